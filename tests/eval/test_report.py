"""report.json, plots and summary: written atomically, readable back."""

import json

from PIL import Image

from selfimprove.eval import evaluate
from selfimprove.eval.report import (
    PLOTS,
    RoundRecord,
    agent_summary,
    critic_scores,
    eval_metrics,
    read_report,
    summary_markdown,
    write_report,
)
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


def test_agent_numbers_reach_the_summary():
    counts = {
        "self_debug/debugged": 10, "self_debug/wrong_to_right": 3,
        "review/reviewed": 8, "review/right_to_wrong": 2, "review/wrong_to_right": 1,
        "critic/critiqued": 12, "critic/parsed": 9, "critic/tp": 3, "critic/fp": 1, "critic/fn": 3,
        "inject/off_by_one/tried": 5, "inject/off_by_one/failing": 4,
        "inject/self_edit:swap_terms/tried": 6, "inject/self_edit:swap_terms/failing": 1,
        "workflows/used": 7, "workflows/new": 2, "workflows/retired": 1,
        "augment/tasks": 4, "augment/failed": 6, "curate/low_confidence": 5,
    }  # fmt: skip
    assert critic_scores(counts) == {"critic_precision": 0.75, "critic_recall": 0.5}
    assert critic_scores({"critic/critiqued": 3}) == {}  # undefined, not zero
    line = "; ".join(agent_summary(counts))
    for part in (
        "self-debug fixed 3/10",
        "right→wrong 2, wrong→right 1",
        "critic parsed 9/12 (precision 75%, recall 50%)",
        "off_by_one 4/5",
        "self_edit:swap_terms 1/6",
        "workflows in 7 tasks, 2 new, 1 retired",
        "4 new tasks from 6 failures",
        "curation low_confidence 5",
    ):
        assert part in line, part
    record = RoundRecord(round=1, promoted=True, metrics={"heldout_pass_at_1": 0.5}, counts=counts)
    assert "Agents:" in summary_markdown([record]) and "fixed 3/10" in summary_markdown([record])
    assert agent_summary({"samples": 4}) == []
