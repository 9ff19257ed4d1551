"""Recording rules checked number by number with promtool's own evaluator, on cases the live test does not
reach: a classifier that collapses onto one class, a class that is never right."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mlmon.render import RECORDING_RULES
from mlmon.spec import spec_from_dict
from tests.helpers import render_into

# Feedback is counted over the feedback windows only; one of 1h keeps the case short.
SPEC = {"models": [{"name": "m", "targets": ["127.0.0.1:8000"], "thresholds": {"feedback_window": "1h"}}]}

F1_TEST = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # model m always predicts "a"; half the truth is "b"
      - series: 'mlmon_feedback_total{{model="m",version="1",predicted="a",actual="a",correct="true"}}'
        values: '0+10x70'
      - series: 'mlmon_feedback_total{{model="m",version="1",predicted="a",actual="b",correct="false"}}'
        values: '0+10x70'
      # model n predicts c and d, and is never right when it says d
      - series: 'mlmon_feedback_total{{model="n",version="1",predicted="c",actual="c",correct="true"}}'
        values: '0+10x70'
      - series: 'mlmon_feedback_total{{model="n",version="1",predicted="d",actual="c",correct="false"}}'
        values: '0+10x70'
    promql_expr_test:
      # scikit-learn's f1_score(average="macro") over the classes seen on either side: 1/3 for both
      - expr: model:mlmon_feedback_f1:macro_1h
        eval_time: 70m
        exp_samples:
          - labels: 'model:mlmon_feedback_f1:macro_1h{{model="m",version="1"}}'
            value: 0.3333333333333333
          - labels: 'model:mlmon_feedback_f1:macro_1h{{model="n",version="1"}}'
            value: 0.3333333333333333
      - expr: model_class:mlmon_feedback_f1:ratio_1h{{model="m"}}
        eval_time: 70m
        exp_samples:
          - labels: 'model_class:mlmon_feedback_f1:ratio_1h{{model="m",version="1",class="a"}}'
            value: 0.6666666666666666
          - labels: 'model_class:mlmon_feedback_f1:ratio_1h{{model="m",version="1",class="b"}}'
            value: 0
      - expr: model:mlmon_feedback_accuracy:ratio_1h
        eval_time: 70m
        exp_samples:
          - labels: 'model:mlmon_feedback_accuracy:ratio_1h{{model="m",version="1"}}'
            value: 0.5
          - labels: 'model:mlmon_feedback_accuracy:ratio_1h{{model="n",version="1"}}'
            value: 0.5
"""


def test_macro_f1_counts_every_class_seen(promtool: str, tmp_path: Path) -> None:
    out = render_into(spec_from_dict(SPEC), tmp_path / "out")
    test_file = tmp_path / "f1-test.yml"
    test_file.write_text(F1_TEST.format(rules=out / RECORDING_RULES))
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
