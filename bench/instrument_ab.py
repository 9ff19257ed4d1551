"""``observe`` and ``observe_batch`` of this checkout against an older commit, in one run.

Each round runs bench/instrument.py's observe cases once per tree, alternating, in fresh interpreters (the
older tree first imported through PYTHONPATH, from a temporary git worktree), so both see the same machine
load. Prints each round and the median of the rounds.

    python bench/instrument_ab.py --against 1015f65 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Runs bench/instrument.py's observe cases with whichever mlmon comes first on sys.path.
CASE = f"""
import json, sys
sys.path.insert(1, {str(HERE)!r})
import instrument
print(json.dumps(instrument.bench_observe()))
"""


def observe_cases(tree: Path) -> dict[str, float]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CASE], env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the observe cases failed on {tree}:\n{done.stderr}")
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="1015f65", help="the older commit (default 1015f65)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlmon-ab-") as scratch:
        old = Path(scratch) / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.against], check=True
        )
        try:
            rounds: dict[str, list[dict[str, float]]] = {"today": [], args.against: []}
            for round_number in range(1, args.rounds + 1):
                for name, tree in (("today", ROOT), (args.against, old)):
                    rounds[name].append(observe_cases(tree))
                figures = "; ".join(
                    f"{name} " + " ".join(f"{v:.2f}" for v in r[-1].values()) for name, r in rounds.items()
                )
                print(f"round {round_number} (microseconds: bare, observe, observe_batch per row): {figures}")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True)
    print(f"\n| case | today | {args.against} | today / {args.against} |")
    print("|---|---:|---:|---:|")
    for case in rounds["today"][0]:
        today = statistics.median(r[case] for r in rounds["today"])
        before = statistics.median(r[case] for r in rounds[args.against])
        print(f"| {case} | {today:.2f} | {before:.2f} | {today / before:.2f} |")


if __name__ == "__main__":
    main()
