"""report.json, plots and summary: written atomically, readable back."""

import json

from PIL import Image

from selfimprove.eval import evaluate
from selfimprove.eval.report import PLOTS, RoundRecord, eval_metrics, read_report, write_report
from selfimprove.tasks import Grader, builtin_tasks
from selfimprove.testing import FakeChatModel


def _rounds():
    return [
        RoundRecord(
            round=0, promoted=True, metrics={"heldout_pass_at_1": 0.2, "code_pass_at_1": 0.3}
        ),
        RoundRecord(
            round=1,
            promoted=True,
            metrics={"heldout_pass_at_1": 0.35, "code_pass_at_1": 0.4},
            counts={"positive": 30, "pair": 12},
            train_loss=[1.2, 0.9, 0.7],
            reasons=["held-out up"],
        ),
        RoundRecord(
            round=2,
            promoted=False,
            metrics={"heldout_pass_at_1": 0.33, "code_pass_at_1": 0.41},
            counts={"positive": 35, "new": 50},
            train_loss=[0.8, 0.75],
            reasons=["no gain"],
            timings={"collect": 100.0, "train": 50.0},
        ),
    ]


def test_report_json_plots_and_summary(tmp_path):
    path = write_report(tmp_path, _rounds(), title="demo")
    data = json.loads(path.read_text())
    assert [r["round"] for r in data["rounds"]] == [0, 1, 2]
    assert data["rounds"][1]["metrics"]["heldout_pass_at_1"] == 0.35
    assert data["rounds"][2]["promoted"] is False
    assert read_report(path) == _rounds()
    for name in PLOTS:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 300
    summary = (tmp_path / "summary.md").read_text()
    assert "| 2 | no (rolled back) | 33.0% | 41.0% | 50 | 2.5 |" in summary
    assert not list(tmp_path.glob(".*.tmp"))


def test_eval_metrics_flattens_suites():
    tasks = builtin_tasks("compare", split="heldout", n=5)
    report = evaluate(
        FakeChatModel({t.prompt: t.answer for t in tasks}), tasks, Grader(), show_progress=False
    )
    assert eval_metrics(report) == {"heldout_pass_at_1": 1.0, "compare_pass_at_1": 1.0}
