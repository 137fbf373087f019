"""The console's views as data: what the rounds table, the plot and the panels show."""

import pytest

pytest.importorskip("gradio", reason="the console extra is not installed")

from selfimprove.console.web import (  # noqa: E402
    accuracy_frame,
    approval_markdown,
    events_frame,
    example_markdown,
    examples_frame,
    rounds_frame,
    status_markdown,
)
from selfimprove.control import ApprovalRequest  # noqa: E402
from selfimprove.runs import Run  # noqa: E402
from selfimprove.testing.runs import start_scripted_run  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("views") / "run"
    start_scripted_run(out, rounds=3).wait(60)  # 0.3 -> 0.6 (yes) -> 0.5 (no) -> 0.8 (yes)
    return Run(out)


def test_the_plot_follows_candidates_and_the_promoted_model(run):
    frame = accuracy_frame(run)
    candidate = frame[frame["model"] == "candidate"]["pass@1"].tolist()
    promoted = frame[frame["model"] == "promoted"]["pass@1"].tolist()
    assert candidate == [0.3, 0.6, 0.5, 0.8]
    assert promoted == [0.3, 0.6, 0.6, 0.8]  # a rolled-back round keeps the incumbent's score


def test_the_rounds_table_and_status_line(run):
    table = rounds_frame(run)
    assert table["promoted"].tolist() == ["baseline", "yes", "no", "yes"]
    assert table["held-out pass@1"].tolist() == ["30.0%", "60.0%", "50.0%", "80.0%"]
    line = status_markdown(run)
    assert "state **finished**" in line and "rounds done 3/3" in line
    assert "baseline 30.0%, promoted model 80.0%" in line
    assert events_frame(run)["event"].tolist()[0] == "run_finished"  # newest first


def test_the_approval_panel_puts_both_models_side_by_side():
    request = ApprovalRequest(
        round=2,
        candidate="/runs/x/round-2/model",
        incumbent="/home/me/.cache/models/smollm2",
        candidate_metrics={"heldout_pass_at_1": 0.45, "code_pass_at_1": 0.4},
        incumbent_metrics={"heldout_pass_at_1": 0.25, "code_pass_at_1": 0.5},
        reasons=["held-out pass@1 0.250 -> 0.450"],
    )
    text = approval_markdown(request)
    assert "promote `round-2/model`?" in text and "over `smollm2`" in text
    assert "| heldout_pass_at_1 | 25.0% | 45.0% | +20.0 pts |" in text
    assert "| code_pass_at_1 | 50.0% | 40.0% | -10.0 pts |" in text
    assert text.index("heldout_pass_at_1") < text.index("code_pass_at_1")  # the gate's metric first
    assert "- held-out pass@1 0.250 -> 0.450" in text


def test_the_examples_browser_filters_and_shows_lineage(run):
    found = examples_frame(run, "negative", 2, "failed", "off_by_one", "")
    assert set(found["kind"]) == {"negative"} and set(found["round"]) == {2}
    assert set(found["operator"]) == {"off_by_one"}
    view = example_markdown(run, found["id"].tolist()[0])
    assert "**Example**" in view and "**Parent 1**" in view and "positive" in view
    assert "no example with id" in example_markdown(run, "nope")
    assert "nothing matched" in examples_frame(run, "workflow", None, "any", "", "")["kind"][0]
