"""What a SIGKILL costs the prediction log, per mode: a child process logs 20-feature predictions (as fast as
it can, or at a steady rate) and is killed at seeded random moments; lost = lines whose ``log()`` had returned
but that are not in the file. The figures are in the README (PredictionLog).

    python bench/prediction_log_kill.py --kills 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.log_writer_child, the killed process

from tests.log_writer_child import kill_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print("| mode | rate | kills | lines logged per s | lost: median | lost: max | max lost as time |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        for mode in ("direct", "background"):
            for rate in (0.0, 2000.0):
                kills = [
                    kill_once(Path(workdir), mode, rng.uniform(0.3, 1.0), rate=rate)
                    for _ in range(args.kills)
                ]
                lost = [k.lost for k in kills]
                per_second = statistics.median(k.acknowledged / k.seconds for k in kills)
                label = "as fast as it can" if not rate else f"paced (sleep {1000 / rate:g} ms per line)"
                print(
                    f"| {mode} | {label} | {len(kills)} | {per_second:,.0f} | {statistics.median(lost):.0f} "
                    f"| {max(lost)} | {1000 * max(lost) / per_second:.1f} ms |"
                )


if __name__ == "__main__":
    main()
