"""Control files: updates merge under a lock; approvals are answered once."""

import pytest
from pydantic import ValidationError

from selfimprove.control import ApprovalRequest, DecisionError, RunControl


def test_updates_merge_and_defaults_survive_a_broken_file(tmp_path):
    control = RunControl(tmp_path)
    assert control.read().paused is False
    control.update(paused=True)
    control.update(rounds=5)
    assert control.read().model_dump() == {
        "paused": True,
        "pause_reason": None,
        "stop": False,
        "rounds": 5,
        "tasks_per_round": None,
        "require_approval": None,
    }
    control.control_path.write_text("{not json")
    assert control.read().paused is False  # unreadable: defaults, nothing raised
    with pytest.raises(ValidationError, match="rounds"):
        control.update(rounds=-1)


def test_a_pending_request_is_answered_once(tmp_path):
    control = RunControl(tmp_path)
    with pytest.raises(DecisionError, match="no promotion is waiting"):
        control.decide(True)
    request = ApprovalRequest(
        round=2,
        candidate="c",
        incumbent="i",
        candidate_metrics={"heldout_pass_at_1": 0.5},
        incumbent_metrics={"heldout_pass_at_1": 0.4},
        reasons=["better"],
    )
    control.request(request)
    assert control.pending().round == 2
    decision = control.decide(False, note="not yet", by="ana")
    assert (decision.round, decision.approve, decision.by) == (2, False, "ana")
    assert control.pending() is None  # answered
    assert control.decision(2).note == "not yet"
    with pytest.raises(DecisionError):
        control.decide(True)  # a second answer is refused, the first stands
    assert control.decision(2).approve is False
