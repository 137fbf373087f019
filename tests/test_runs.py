"""A run steered through its folder: approvals, pause, stop, budgets, added tasks, lineage.

Driven by ``start_scripted_run``: the real round graph, loop driver and run folder
with instant fake collect/train parts.
"""

import time

import pytest

from selfimprove.config import Config
from selfimprove.loop import RunStateError, is_running, start_loop
from selfimprove.runs import Run, RunError
from selfimprove.tasks.loaders import TaskFileError
from selfimprove.testing.runs import HELDOUT, start_scripted_run


def _until(run, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run.status()
        if predicate(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status {status}")


def test_a_promotion_waits_for_the_operator_and_follows_the_decision(tmp_path):
    seen = []
    handle = start_scripted_run(
        tmp_path, rounds=3, require_approval=True, on_event=lambda k, d: seen.append((k, d))
    )
    run = Run(tmp_path)
    status = _until(run, lambda s: s.state == "awaiting_approval")
    request = status.pending_approval
    assert request.round == 1 and request.candidate == "model-1"
    assert request.incumbent_metrics["heldout_pass_at_1"] == 0.3
    assert request.candidate_metrics["heldout_pass_at_1"] == 0.6
    assert status.rounds_done == 0  # nothing promoted behind the operator's back
    run.approve("looks right", by="ana")
    # round 2 regresses (the gate rejects it without asking); round 3 improves: asked again
    status = _until(run, lambda s: s.pending_approval is not None and s.pending_approval.round == 3)
    run.reject("hold on")
    handle.wait(30)
    rounds = run.rounds()
    assert [(r.round, r.promoted) for r in rounds] == [(0, True), (1, True), (2, False), (3, False)]
    assert rounds[1].reasons[-1] == "promotion approved by ana: looks right"
    assert rounds[3].reasons[-1] == "promotion rejected by operator: hold on"
    kinds = [e.kind for e in run.events()]
    assert kinds.count("approval_requested") == 2 and kinds.count("approval") == 2
    # the in-process listener (what the CLI prints from) hears the same stream
    assert [k for k, _ in seen] == kinds
    assert [d["round"] for k, d in seen if k == "approval"] == [1, 3]
    assert run.status().state == "finished"
    assert not (tmp_path / "approval.json").exists()


def test_approval_switched_on_while_the_run_goes_applies_at_the_next_gate(tmp_path):
    run = Run(tmp_path)
    run.require_approval()  # e.g. from the console, while `make demo` runs without it
    handle = start_scripted_run(tmp_path, rounds=1, require_approval=False)
    _until(run, lambda s: s.state == "awaiting_approval")
    run.reject()
    handle.wait(30)
    assert not run.rounds()[1].promoted
    run.require_approval(False)
    run.set_budget(rounds=2)
    start_scripted_run(tmp_path, rounds=1, resume=True).wait(30)
    assert run.rounds()[2].promoted  # better, and promoted without asking
    assert [e.data for e in run.events(kinds={"budget"})][0] == {"require_approval": True}
    assert len(run.events(kinds={"approval_requested"})) == 1


def test_pause_holds_the_run_between_steps_and_resume_continues(tmp_path):
    run = Run(tmp_path)
    run.pause()  # paused before it starts: it stops at the first step boundary
    handle = start_scripted_run(tmp_path, rounds=2)
    status = _until(run, lambda s: s.state == "paused")
    time.sleep(0.6)
    assert run.rounds() == [] or len(run.rounds()) <= 1  # no round gated while paused
    assert handle.running
    run.resume()
    handle.wait(30)
    kinds = [e.kind for e in run.events()]
    assert kinds.index("paused") < kinds.index("resumed") < kinds.index("run_finished")
    assert status.control.paused is True and run.status().state == "finished"


def test_stop_then_resume_finishes_with_nothing_lost_or_repeated(tmp_path):
    run = Run(tmp_path)
    handle = start_scripted_run(tmp_path, rounds=3, step_s=0.2)
    _until(run, lambda s: s.rounds_done >= 1)
    run.stop()
    handle.wait(30)
    assert run.status().state == "stopped"
    stopped_at = len(run.rounds())
    assert stopped_at < 4
    start_scripted_run(tmp_path, rounds=3, resume=True).wait(30)
    rounds = run.rounds()
    assert [r.round for r in rounds] == [0, 1, 2, 3]
    reference = tmp_path / "reference"
    start_scripted_run(reference, rounds=3).wait(30)
    assert [(r.promoted, r.metrics) for r in rounds] == [
        (r.promoted, r.metrics) for r in Run(reference).rounds()
    ]
    assert run.store.count() == Run(reference).store.count()  # nothing stored twice


def test_a_run_stopped_before_its_first_report_resumes(tmp_path):
    run = Run(tmp_path)
    run.stop()  # acted on after the baseline step, before the report step writes report.json
    start_scripted_run(tmp_path, rounds=1).wait(30)
    assert run.status().state == "stopped" and run.rounds() == []
    start_scripted_run(tmp_path, rounds=1, resume=True).wait(30)
    assert run.status().state == "finished"
    assert [r.round for r in run.rounds()] == [0, 1]


def test_a_budget_change_applies_at_the_next_round_boundary(tmp_path):
    run = Run(tmp_path)
    run.set_budget(rounds=1)
    start_scripted_run(tmp_path, rounds=3).wait(30)
    assert [r.round for r in run.rounds()] == [0, 1]
    assert any(e.kind == "budget" and e.data == {"rounds": 1} for e in run.events())
    # a finished run continues when the budget asks for more rounds
    run.set_budget(rounds=2)
    start_scripted_run(tmp_path, rounds=1, resume=True).wait(30)
    assert [r.round for r in run.rounds()] == [0, 1, 2]
    with pytest.raises(RunError, match="give rounds"):
        run.set_budget()


def test_added_tasks_are_tried_first_in_the_next_round(tmp_path):
    run = Run(tmp_path)
    run.set_budget(rounds=1, tasks_per_round=4)
    start_scripted_run(tmp_path, rounds=1).wait(30)
    task = {
        "id": "op/1",
        "prompt": "What is 1234 + 4321? Answer with the number.",
        "answer": "5555",
    }
    assert run.add_tasks([task, task]) == 1  # the same id twice is one task
    assert run.add_tasks([task]) == 0
    assert run.status().state == "finished"  # queuing tasks does not change the run's state
    run.set_budget(rounds=2)
    start_scripted_run(tmp_path, rounds=2, resume=True).wait(30)
    tried = run.examples(kind="attempt", task_id="op/1")
    assert tried and {e.round for e in tried} == {2}
    assert run.rounds()[2].counts["tasks/added"] == 1
    assert any(e.kind == "tasks_added" for e in run.events())


def test_tasks_that_leak_a_heldout_task_or_are_invalid_are_refused(tmp_path):
    start_scripted_run(tmp_path, rounds=0).wait(30)
    run = Run(tmp_path)
    leak = {"id": "op/leak", "prompt": HELDOUT[0].prompt, "answer": HELDOUT[0].answer}
    with pytest.raises(RunError, match="leaks held-out task"):
        run.add_tasks([leak])
    with pytest.raises(RunError, match="task 0 is not a valid task \\(prompt: Field required"):
        run.add_tasks([{"id": "x"}])
    assert not (tmp_path / "added_tasks.jsonl").exists()


def test_reading_a_run_failures_examples_and_lineage(tmp_path):
    start_scripted_run(tmp_path, rounds=1).wait(30)
    run = Run(tmp_path)
    failures = run.failures(1)
    assert failures and all(e.kind == "attempt" and e.passed is False for e in failures)
    assert {e.round for e in failures} == {1}
    negative = run.examples(kind="negative", operator="off_by_one", limit=1)[0]
    view = run.example(negative.id)
    assert [p.kind for p in view.parents] == ["positive"]
    parent = run.example(view.parents[0].id)
    assert {c.kind for c in parent.children} == {"negative", "pair"}
    with pytest.raises(RunError, match="no example with id"):
        run.example("nope")
    with pytest.raises(RunError, match="has not run yet"):
        run.failures(7)
    hits = run.examples(query=failures[0].prompt, limit=3)
    assert failures[0].prompt in {h.prompt for h in hits}


def test_one_process_runs_a_folder_at_a_time(tmp_path):
    run = Run(tmp_path)
    run.pause()
    handle = start_scripted_run(tmp_path, rounds=1)
    _until(run, lambda s: s.state == "paused")
    assert is_running(tmp_path)
    with pytest.raises(RunStateError, match="another process"):
        start_scripted_run(tmp_path, rounds=1, resume=True).wait(30)
    run.stop()
    handle.wait(30)
    assert not is_running(tmp_path)
    assert not run.events(kinds={"run_failed"})  # the refused second start wrote nothing


def test_a_background_loop_that_fails_before_its_first_step_says_so(tmp_path):
    config = Config()
    config.loop.out_dir = tmp_path / "run"
    config.tasks.files = [tmp_path / "missing.jsonl"]
    handle = start_loop(config)
    with pytest.raises(TaskFileError, match="missing.jsonl"):
        handle.wait(60)
    status = Run(tmp_path / "run").status()
    assert status.state == "failed"
    assert "missing.jsonl" in status.last_event.data["error"]


def test_status_of_a_folder_with_no_run(tmp_path):
    status = Run(tmp_path).status()
    assert (status.state, status.rounds_done, status.last_event) == ("not_started", 0, None)
    with pytest.raises(RunError, match="no run in"):
        Run(tmp_path).examples()


def test_the_handle_steers_like_the_run_folder(tmp_path):
    handle = start_scripted_run(tmp_path, rounds=3, health_max_rejections=1)
    run = Run(tmp_path)
    status = _until(run, lambda s: s.state == "paused")  # a health pause after round 2
    assert status.control.pause_reason
    handle.resume()  # clears the reason, as Run.resume and /resume do
    assert run.control.read().pause_reason is None
    handle.wait(30)
    assert run.status().state == "finished"
