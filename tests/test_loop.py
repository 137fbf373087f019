"""run_loop end to end on a tiny real model: collect, train, evaluate, gate, report, resume."""

import json

import pytest

from selfimprove.api import RunStateError, run_loop
from selfimprove.config import Config
from selfimprove.memory import open_store
from selfimprove.testing import tiny_model


def _config(tmp_path, model):
    cfg = Config()
    cfg.student.model = model
    cfg.tasks.suites = ["arithmetic"]
    cfg.tasks.heldout_per_suite = 10
    cfg.tasks.train_per_suite = 12
    cfg.loop.rounds = 2
    cfg.loop.samples_per_task = 4
    cfg.loop.out_dir = tmp_path / "run"
    cfg.store.path = tmp_path / "run" / "store"
    cfg.store.embedding = "hash"
    cfg.training.max_steps = 4
    cfg.training.batch_size = 4
    return cfg


def test_loop_runs_rounds_gates_and_resumes(tmp_path, warm_model):
    cfg = _config(tmp_path, warm_model)
    rounds = run_loop(cfg, show_progress=False)
    assert [r.round for r in rounds] == [0, 1, 2]
    assert rounds[0].promoted and rounds[0].reasons == ["baseline"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (
        report["rounds"][1]["metrics"]["heldout_pass_at_1"]
        == rounds[1].metrics["heldout_pass_at_1"]
    )
    store = open_store(cfg.store)
    sampled = store.count({"$and": [{"kind": "attempt"}, {"round": 1}, {"agent": "student"}]})
    assert 12 <= sampled <= 12 * 4  # identical samples of a task are stored once
    for r in rounds[1:]:
        if r.promoted:
            assert r.metrics["heldout_pass_at_1"] > rounds[0].metrics["heldout_pass_at_1"]
        if r.counts.get("positive"):
            assert (
                r.train_loss
                and (tmp_path / "run" / f"round-{r.round}" / "model" / "manifest.json").exists()
            )
    with pytest.raises(RunStateError, match="already exists"):
        run_loop(cfg, show_progress=False)
    stored = store.count()
    assert run_loop(cfg, resume=True, show_progress=False) == rounds  # finished: nothing redone
    assert open_store(cfg.store).count() == stored


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunStateError, match="nothing to resume"):
        run_loop(_config(tmp_path, str(tiny_model())), resume=True, show_progress=False)


def test_the_gate_rejects_a_candidate_that_does_not_beat_the_margin(tmp_path, warm_model):
    cfg = _config(tmp_path, warm_model)
    cfg.loop.rounds = 1
    cfg.loop.promote_margin = 1.0  # no candidate can gain more than 100 points
    base, one = run_loop(cfg, show_progress=False)
    assert not one.promoted
    assert "does not beat the margin 1.000" in one.reasons[0]
    assert one.model_path and (tmp_path / "run" / "round-1" / "model" / "manifest.json").exists()
    assert base.model_path == warm_model  # the incumbent stays


def test_demo_config_is_the_embedded_default_with_agents_on():
    from selfimprove.api import demo_config

    cfg = demo_config(rounds=3, out_dir="somewhere")
    assert cfg.student.model == "smollm2-135m-instruct" and cfg.loop.rounds == 3
    assert cfg.loop.self_debug and cfg.loop.inject_errors and cfg.training.method == "sft"
    assert str(cfg.loop.out_dir) == "somewhere"


def test_a_run_interrupted_in_training_resumes_to_the_same_result(
    tmp_path, warm_model, monkeypatch
):
    import selfimprove.trainers as trainers

    real, calls = trainers.train_round, []

    def crash_once(*args, **kwargs):
        calls.append(args[-1])
        if len(calls) == 1:
            raise RuntimeError("simulated crash while training")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainers, "train_round", crash_once)
    cfg = _config(tmp_path / "a", warm_model)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_loop(cfg, show_progress=False)
    stored_at_crash = open_store(cfg.store).count()
    resumed = run_loop(cfg, resume=True, show_progress=False)
    reference_cfg = _config(tmp_path / "b", warm_model)
    reference = run_loop(reference_cfg, show_progress=False)

    def decisions(rounds):
        return [(r.round, r.promoted, r.metrics, r.counts) for r in rounds]

    assert decisions(resumed) == decisions(reference)
    assert calls[0].name == "model" and calls[0].parent.name == "round-1"
    # the examples round 1 collected before the crash are the ones it trained on: none
    # lost, none added twice, and the store ends equal to the uninterrupted run's
    store = open_store(cfg.store)
    assert store.count({"round": 1}) == stored_at_crash > 0
    assert store.count() == open_store(reference_cfg.store).count()


def test_run_round_adds_one_round_at_a_time(tmp_path, warm_model):
    from selfimprove.api import run_round
    from selfimprove.runs import Run

    cfg = _config(tmp_path, warm_model)
    cfg.loop.rounds = 5  # run_round ignores the budget: one round per call
    first = run_round(cfg, show_progress=False)
    second = run_round(cfg, show_progress=False)
    assert (first.round, second.round) == (1, 2)
    run = Run(cfg.loop.out_dir)
    assert [r.round for r in run.rounds()] == [0, 1, 2]
    assert run.status().state == "finished"
    assert [e.kind for e in run.events(kinds={"run_started", "run_finished"})] == [
        "run_started",
        "run_finished",
    ] * 2
    kinds = {e.kind for e in run.events()}
    assert {"round_started", "batch_verified", "training_step", "gate", "progress"} <= kinds
