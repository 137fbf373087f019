"""The console's operator: slash commands on a scripted run, and the LangGraph agent
driven by the shipped ``FakeToolChat``."""

import time

import pytest

from selfimprove.config import Config
from selfimprove.console.commands import COMMANDS, run_command
from selfimprove.console.llm import LiteLLMChat
from selfimprove.console.operator import NO_MODEL, Operator, make_operator, operator_tools
from selfimprove.models.base import ModelError
from selfimprove.runs import Run
from selfimprove.testing.operator import FakeToolChat
from selfimprove.testing.runs import start_scripted_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A scripted run of two rounds, finished: round 1 promoted, round 2 rolled back."""
    out = tmp_path_factory.mktemp("finished") / "run"
    start_scripted_run(out, rounds=2).wait(120)
    return out


@pytest.fixture
def run(finished):
    """The finished run; the control a test writes is undone afterwards."""
    yield Run(finished)
    (finished / "control.json").unlink(missing_ok=True)


def _wait_for(run, state, timeout=60.0):
    deadline = time.monotonic() + timeout
    while (now := run.status()).state != state:
        failed = now.last_event.data.get("error") if now.state == "failed" else None
        assert failed is None, f"the run failed while waiting for {state!r}: {failed}"
        assert time.monotonic() < deadline, f"run stuck in {now.state!r}, waiting for {state!r}"
        time.sleep(0.05)


# -- slash commands ---------------------------------------------------------------------------
def test_status_shows_the_state_and_the_scores(run):
    text = run_command(run, "/status")
    assert "finished" in text and "rounds done 2/2" in text
    assert "30.0%" in text and "60.0%" in text  # baseline → promoted
    usage = run.status().usage  # the scripted models' tokens, summed over the rounds
    per_round = [r.usage.get("completion_tokens", 0) for r in run.rounds()]
    assert usage["completion_tokens"] == sum(per_round) and all(per_round)
    assert f"model tokens: {usage['prompt_tokens'] + usage['completion_tokens']:,.0f}" in text


def test_rounds_table_has_each_round_with_the_gate_decision(run):
    text = run_command(run, "/rounds")
    assert "| round | promoted | held-out pass@1 | arithmetic | new examples | reasons |" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")
    ]
    assert "yes" in rows[0] and "60.0%" in rows[0]
    assert "no (rolled back)" in rows[1] and "does not beat" in rows[1]


def test_failures_lists_failed_attempts_with_ids(run):
    failed = run.failures(1)
    text = run_command(run, "/failures 1 3")
    assert "no idea" in text and f"`{failed[0].id}`" in text
    assert text.count("**attempt**") == 3 and "failed" in text


def test_example_shows_lineage_of_a_pair_and_a_negative(run):
    for kind in ("pair", "negative"):
        example = run.examples(kind=kind, round=1, limit=1)[0]
        text = run_command(run, f"/example {example.id}")
        assert f"**{kind}**" in text and "**Parents**" in text
        assert f"`{example.parent_id}`" in text and "**positive**" in text
    pair = run.examples(kind="pair", round=1, limit=1)[0]
    assert "Rejected:" in run_command(run, f"/example {pair.id}")


def test_search_finds_similar_examples_and_filters_by_kind(run):
    task = run.examples(kind="pair", round=1, limit=1)[0]
    text = run_command(run, f"/search kind=pair {task.prompt}")
    assert f"`{task.id}`" in text and "**pair**" in text and "**attempt**" not in text


def test_events_shows_the_latest_events(run):
    text = run_command(run, "/events 2")
    assert "run_finished" in text and "gate" in text and text.count("\n| ") == 2


def test_budget_changes_the_control(run):
    assert "rounds 3" in run_command(run, "/budget rounds=3")
    assert run.control.read().rounds == 3
    run_command(run, "/budget tasks=40")
    assert run.control.read().tasks_per_round == 40 and run.control.read().rounds == 3


def test_approval_switches_asking_before_promotion(run):
    assert "asks before promoting" in run_command(run, "/approval on")
    assert run.control.read().require_approval is True
    assert "on its own" in run_command(run, "/approval OFF")
    assert run.control.read().require_approval is False
    assert "`/approval on`" in run_command(run, "/approval maybe")


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("/failures x", "/failures ROUND [LIMIT]"),
        ("/failures", "/failures ROUND [LIMIT]"),
        ("/failures 9", "has not run yet"),
        ("/example nope", "copy an id from"),
        ("/example", "/example 3f2a"),
        ("/search", "/search TEXT"),
        ("/search kind=foo x", "kind is one of attempt, positive"),
        ("/budget", "/budget rounds=N"),
        ("/budget rounds=x", "whole number"),
        ("/budget speed=3", "key=value"),
        ("/budget rounds=99999", "rounds"),
        ("/events x", "/events 30"),
        ("/status now", "takes no arguments"),
        ("/stauts", "Did you mean `/status`?"),
        ("/frobnicate", "Type `/help`"),
        ("/approve", "No promotion is waiting for approval"),
        ("/reject not now", "No promotion is waiting for approval"),
        ("/stop", "Nothing to stop"),
    ],
)
def test_bad_input_says_what_to_type_instead(run, command, hint):
    text = run_command(run, command)
    assert hint in text
    assert "\n" not in text  # one paragraph


def test_commands_on_a_folder_without_a_run_point_to_starting_one(tmp_path):
    empty = Run(tmp_path / "none")
    for command in ("/status", "/failures 1", "/pause", "/budget rounds=2", "/search x"):
        assert "No run in" in run_command(empty, command) and "selfimprove demo" in run_command(
            empty, command
        )
    assert "No rounds" in run_command(empty, "/rounds")
    assert not (tmp_path / "none").exists()  # reading and refusing writes nothing
    assert "/approve" in run_command(empty, "/help") and "/budget" in run_command(empty, "/help")


def test_approve_promotes_the_waiting_round(tmp_path):
    out = tmp_path / "run"
    handle = start_scripted_run(out, rounds=1, require_approval=True)
    run = Run(out)
    _wait_for(run, "awaiting_approval")
    status = run_command(run, "/status")
    assert "Waiting for approval" in status and "model-1" in status and "/approve" in status
    assert "Approved round 1" in run_command(run, "/approve looks right")
    handle.wait(60)
    assert [r.promoted for r in run.rounds()] == [True, True]
    assert run.control.decision(1).note == "looks right"
    assert "No promotion is waiting" in run_command(run, "/approve")


def test_reject_keeps_the_incumbent(tmp_path):
    out = tmp_path / "run"
    handle = start_scripted_run(out, rounds=1, require_approval=True)
    run = Run(out)
    _wait_for(run, "awaiting_approval")
    assert "Rejected round 1" in run_command(run, "/reject too risky")
    handle.wait(60)
    assert [r.promoted for r in run.rounds()] == [True, False]


def test_pause_and_resume_a_live_run(tmp_path):
    out = tmp_path / "run"
    handle = start_scripted_run(out, rounds=2, step_s=0.3)
    run = Run(out)
    _wait_for(run, "running")
    assert "Paused" in run_command(run, "/pause")
    assert "**paused**" in run_command(run, "/status")
    deadline = time.monotonic() + 30
    while not run.events(kinds={"paused"}):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "Resumed" in run_command(run, "/resume")
    handle.wait(60)
    assert run.status().state == "finished" and run.events(kinds={"resumed"})


# -- the agent ---------------------------------------------------------------------------------
RULES = [
    ("status", "get_status", {}),
    (r"failures in round (\d+)", "show_failures", {"round": "$1"}),
    ("pause", "pause_loop", {}),
    (r"example (\w+)", "show_example", {"example_id": "$1"}),
    ("approve", "approve", {}),
]


def test_free_text_goes_to_the_agent_which_calls_the_tools(run):
    model = FakeToolChat(rules=RULES)
    operator = Operator(run, model)
    reply = operator.reply("what is the status of the run?")
    assert model.tool_calls[-1]["name"] == "get_status"
    assert "Here is what I found" in reply and "finished" in reply and "60.0%" in reply

    reply = operator.reply("show failures in round 1")
    assert model.tool_calls[-1]["name"] == "show_failures"
    assert model.tool_calls[-1]["args"] == {"round": 1}
    assert "no idea" in reply and "Failed attempts of round 1" in reply

    # one conversation: the model sees the earlier turns
    seen = [m.content for m in model.prompts[-1]]
    assert "what is the status of the run?" in seen
    assert seen[0].startswith("You are the operator")


def test_the_agent_steers_the_run(run):
    operator = Operator(run, FakeToolChat(rules=RULES))
    assert not run.control.read().paused
    operator.reply("please pause the loop")
    assert run.control.read().paused


def test_tool_errors_go_back_to_the_model(run):
    operator = Operator(run, FakeToolChat(rules=RULES))
    reply = operator.reply("open example nope")
    assert "no example with id 'nope'" in reply


def test_the_agent_cannot_approve(run):
    model = FakeToolChat(rules=RULES)
    operator = Operator(run, model)
    operator.reply("hello")
    assert not {"approve", "reject"} & set(model.bound_tools)
    assert "approve" not in " ".join(model.bound_tools)
    assert "not a valid tool" in operator.reply("approve round 1")
    names = {t.name for t in operator_tools(run)}
    assert {"get_status", "show_failures", "search_memory", "add_tasks"} <= names
    assert not {n for n in names if "approv" in n or "reject" in n}


def test_no_rule_matched_is_a_plain_answer(run):
    model = FakeToolChat(rules=RULES)
    reply = Operator(run, model).reply("tell me a joke")
    assert reply.startswith("I can help with:") and "get_status" in reply
    assert not model.tool_calls


def test_without_a_model_free_text_points_to_the_config(run):
    operator = Operator(run)
    reply = operator.reply("how is it going?")
    assert reply == NO_MODEL and "console.operator.model" in reply and "/help" in reply
    assert "finished" in operator.reply("/status")
    assert "/help" in operator.reply("   ")


def test_add_tasks_tool_queues_tasks(run, finished):
    model = FakeToolChat(
        rules=[
            (
                "add",
                "add_tasks",
                {"tasks": [{"id": "op/1", "prompt": "What is 1234 + 4321?", "answer": "5555"}]},
            )
        ]
    )
    reply = Operator(run, model).reply("add a task please")
    assert "Queued 1 new task" in reply
    assert (finished / "added_tasks.jsonl").read_text().count("op/1") == 1
    (finished / "added_tasks.jsonl").unlink()


def test_make_operator_builds_the_model_from_the_config(run, monkeypatch):
    config = Config()
    assert make_operator(run, config).model is None
    config.console.operator.model = "openai/gpt-4o-mini"
    operator = make_operator(run, config)
    assert isinstance(operator.model, LiteLLMChat)
    assert operator.model.model == "openai/gpt-4o-mini" and operator.model.max_tokens == 512
    config.console.operator.api_key_env = "SELFIMPROVE_TEST_OPERATOR_KEY"
    monkeypatch.delenv("SELFIMPROVE_TEST_OPERATOR_KEY", raising=False)
    with pytest.raises(ModelError, match="SELFIMPROVE_TEST_OPERATOR_KEY"):
        make_operator(run, config)


def test_every_command_is_in_help(run):
    text = run_command(run, "/help")
    for name in COMMANDS:
        assert f"`/{name}" in text
