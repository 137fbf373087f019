"""The REST API against scripted runs: auth, reading, events, steering, agents."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from selfimprove.config import Config, ConsoleConfig
from selfimprove.console.auth import COOKIE, TokenError, resolve_token, token_path
from selfimprove.console.server import create_app
from selfimprove.tasks import builtin_tasks
from selfimprove.testing.runs import scripted_config, start_scripted_run

TOKEN = "test-token-0123456789-abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(out: Path, **kwargs: Any) -> TestClient:
    return TestClient(create_app(out, token=TOKEN, ui=False, **kwargs), headers=AUTH)


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {check}")
        time.sleep(0.05)


def _state(client: TestClient) -> str:
    return client.get("/api/status").json()["state"]


def _sse(text: str) -> list[dict[str, Any]]:
    """The events of a text/event-stream body ({"id", "event", "data"}; comments skipped)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            name, sep, value = line.partition(":")
            if name and sep:
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            out.append(fields)
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    start_scripted_run(out, rounds=2).wait(60)
    return out


@pytest.fixture(scope="module")
def client(finished: Path) -> Iterator[TestClient]:
    with _client(finished) as c:
        yield c


# -- auth ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/status", "/openapi.json", "/docs", "/", "/console/"])
def test_requests_without_the_token_get_401_saying_how(finished: Path, path: str) -> None:
    anonymous = TestClient(create_app(finished, token=TOKEN, ui=False))
    response = anonymous.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["detail"]


def test_a_wrong_token_gets_401_in_the_header_and_in_the_cookie(finished: Path) -> None:
    anonymous = TestClient(create_app(finished, token=TOKEN, ui=False))
    wrong = TOKEN[:-1] + "x"
    by_header = anonymous.get("/api/status", headers={"Authorization": f"Bearer {wrong}"})
    assert by_header.status_code == 401
    assert by_header.json()["detail"].startswith("invalid token")
    anonymous.cookies.set(COOKIE, wrong)
    assert anonymous.get("/api/status").status_code == 401
    assert anonymous.get("/api/status", headers={"Authorization": "Basic abc"}).status_code == 401


def test_the_right_token_opens_the_api_and_its_schema(client: TestClient) -> None:
    assert client.get("/api/status").status_code == 200
    schema = client.get("/openapi.json").json()
    tags = {
        tag for route in schema["paths"].values() for op in route.values() for tag in op["tags"]
    }
    assert {"run", "events", "control", "agents", "auth"} <= tags
    assert client.get("/", follow_redirects=False).headers["location"] == "/docs"


def test_login_sets_an_httponly_strict_cookie_that_authenticates(finished: Path) -> None:
    browser = TestClient(create_app(finished, token=TOKEN, ui=False))
    assert browser.get("/login", params={"token": "wrong-wrong-wrong-wrong"}).status_code == 401
    assert browser.get("/login").status_code == 401
    response = browser.get("/login", params={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/docs"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert browser.get("/api/status").json()["state"] == "finished"


def test_cross_origin_requests_get_no_cors_headers(client: TestClient) -> None:
    origin = {"Origin": "https://evil.example"}
    response = client.get("/api/status", headers=origin)
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/api/control/stop", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_the_console_listens_on_loopback_by_default() -> None:
    assert ConsoleConfig().host == "127.0.0.1"


def test_a_generated_token_is_kept_in_a_file_only_its_owner_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SELFIMPROVE_TOKEN", raising=False)
    token, source = resolve_token(None)
    path = tmp_path / "xdg" / "selfimprove" / "token"
    assert token_path() == path and str(path) in source and len(token) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_token(None) == (token, str(path))  # the same one next time
    monkeypatch.setenv("SELFIMPROVE_TOKEN", "from-the-environment-1234")
    assert resolve_token(None) == ("from-the-environment-1234", "$SELFIMPROVE_TOKEN")
    assert resolve_token(TOKEN)[0] == TOKEN
    monkeypatch.setenv("SELFIMPROVE_TOKEN", "short")
    with pytest.raises(TokenError, match="at least 16"):
        resolve_token(None)


# -- reading the run -------------------------------------------------------------------------
def test_status_and_rounds_of_a_finished_run(client: TestClient) -> None:
    status = client.get("/api/status").json()
    assert status["state"] == "finished" and status["rounds_done"] == 2
    assert status["baseline_pass_at_1"] == pytest.approx(0.3)
    rounds = client.get("/api/rounds").json()
    assert [(r["round"], r["promoted"]) for r in rounds] == [(0, True), (1, True), (2, False)]


def test_failures_of_a_round_and_404_for_a_round_not_run(client: TestClient) -> None:
    failed = client.get("/api/rounds/1/failures", params={"limit": 3}).json()
    assert len(failed) == 3
    assert all(e["kind"] == "attempt" and not e["passed"] and e["round"] == 1 for e in failed)
    missing = client.get("/api/rounds/9/failures")
    assert missing.status_code == 404 and "has not run yet" in missing.json()["detail"]
    assert client.get("/api/rounds/-1/failures").status_code == 422


def test_examples_filter_by_kind_round_verdict_and_operator(client: TestClient) -> None:
    negatives = client.get(
        "/api/examples", params={"kind": "negative", "operator": "off_by_one", "round": 2}
    ).json()
    assert negatives and all(
        (e["kind"], e["error_type"], e["round"]) == ("negative", "off_by_one", 2) for e in negatives
    )
    passed = client.get("/api/examples", params={"kind": "attempt", "passed": True}).json()
    assert passed and all(e["passed"] for e in passed)
    task_id = passed[0]["task_id"]
    same_task = client.get("/api/examples", params={"task_id": task_id, "limit": 100}).json()
    assert {e["task_id"] for e in same_task} == {task_id}
    similar = client.get("/api/examples", params={"q": passed[0]["prompt"], "limit": 2}).json()
    assert len(similar) == 2
    bad = client.get("/api/examples", params={"kind": "essay"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "kind"]


def test_an_example_comes_with_its_lineage(client: TestClient) -> None:
    negative = client.get("/api/examples", params={"kind": "negative", "limit": 1}).json()[0]
    view = client.get(f"/api/examples/{negative['parent_id']}").json()
    assert view["example"]["kind"] == "positive"
    assert {c["kind"] for c in view["children"]} == {"negative", "pair"}
    child = client.get("/api/examples/" + _id_of(client, negative)).json()
    assert child["parents"][0]["kind"] == "positive"


def _id_of(client: TestClient, example: dict[str, Any]) -> str:
    from selfimprove.types import Example

    return Example.model_validate(example).id


@pytest.mark.parametrize(
    "path",
    [
        "/api/examples/..%2F..%2Fetc%2Fpasswd",
        "/api/examples/../../etc/passwd",
        "/api/examples/%2e%2e",
        "/api/examples/..",
        "/api/examples/a%00b",
        "/api/examples/0123456789abcdef0123456789abcdef",
    ],
)
def test_unknown_or_traversing_example_ids_never_reach_a_file(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code in (404, 422)
    assert "root:" not in response.text


def test_a_folder_without_a_run_answers_without_breaking(tmp_path: Path) -> None:
    client = _client(tmp_path / "nothing")
    assert client.get("/api/status").json()["state"] == "not_started"
    assert client.get("/api/rounds").json() == []
    assert client.get("/api/events").json() == []
    for path in ("/api/examples", "/api/rounds/0/failures", "/api/examples/abc"):
        response = client.get(path)
        assert response.status_code == 409 and "no run in" in response.json()["detail"]
    task = builtin_tasks("arithmetic", split="train", n=1)[0].model_dump(mode="json")
    assert client.post("/api/tasks", json={"tasks": [task]}).status_code == 409
    started = client.post("/api/loop/start", json={})
    assert started.status_code == 409 and "without --config" in started.json()["detail"]


# -- events ----------------------------------------------------------------------------------
def test_events_come_in_order_and_page_with_after(client: TestClient) -> None:
    events = client.get("/api/events").json()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "run_started" and events[-1]["kind"] == "run_finished"
    assert client.get("/api/events", params={"after": 3, "limit": 2}).json() == events[3:5]
    gates = client.get("/api/events", params={"kind": "gate"}).json()
    assert [e["round"] for e in gates] == [1, 2]


def test_the_event_stream_sends_ids_kinds_and_resumes_from_last_event_id(
    client: TestClient,
) -> None:
    expected = client.get("/api/events").json()
    response = client.get("/api/events/stream", params={"max_s": 0.05})
    assert response.headers["content-type"].startswith("text/event-stream")
    streamed = _sse(response.text)
    assert [int(e["id"]) for e in streamed] == [e["seq"] for e in expected]
    assert [e["event"] for e in streamed] == [e["kind"] for e in expected]
    assert streamed[-1]["data"] == expected[-1]
    resumed = client.get(
        "/api/events/stream", params={"max_s": 0.05}, headers={"Last-Event-ID": "4"}
    )
    assert [int(e["id"]) for e in _sse(resumed.text)] == [e["seq"] for e in expected[4:]]
    gates = _sse(client.get("/api/events/stream?kind=gate&max_s=0.05").text)
    assert [e["event"] for e in gates] == ["gate", "gate"]


def test_an_idle_event_stream_sends_keepalive_comments(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastapi.routing

    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.05)
    text = client.get("/api/events/stream", params={"after": 10_000, "max_s": 0.3}).text
    assert text.startswith(": ping") and _sse(text) == []


def test_the_stream_delivers_events_of_a_live_run(tmp_path: Path) -> None:
    out = tmp_path / "live"
    handle = start_scripted_run(out, rounds=1, step_s=0.3)
    try:
        client = _client(out)
        text = client.get("/api/events/stream", params={"until_end": True, "max_s": 30}).text
        kinds = [e["event"] for e in _sse(text)]
        assert kinds[0] == "run_started" and "gate" in kinds and kinds[-1] == "run_finished"
    finally:
        handle.wait(30)


# -- steering --------------------------------------------------------------------------------
def test_bad_payloads_get_422_naming_the_field(client: TestClient) -> None:
    def field_of(response: Any) -> list[Any]:
        assert response.status_code == 422, response.text
        return response.json()["detail"][0]["loc"]

    assert field_of(client.post("/api/budget", json={"rounds": -1})) == ["body", "rounds"]
    assert field_of(client.post("/api/approval", json={"approve": "maybe"})) == [
        "body",
        "approve",
    ]
    task = {"id": "t1", "answer": "3"}
    assert field_of(client.post("/api/tasks", json={"tasks": [task]})) == [
        "body",
        "tasks",
        0,
        "prompt",
    ]
    code = [t.model_dump(mode="json") for t in builtin_tasks("code", split="heldout", n=2)]
    mismatch = client.post("/api/verify", json={"tasks": code, "completions": ["x"]})
    assert field_of(mismatch) == ["body"]
    assert "2 tasks but 1 completions" in mismatch.json()["detail"][0]["msg"]
    too_many = {"tasks": code * 129, "completions": ["x"] * 258}
    assert field_of(client.post("/api/verify", json=too_many))[:2] == ["body", "tasks"]
    empty_budget = client.post("/api/budget", json={})
    assert empty_budget.status_code == 422
    assert "give rounds and/or tasks_per_round" in empty_budget.json()["detail"][0]["msg"]
    # strict types: false is not 0 rounds, "3" is not 3 (either would silently change the run)
    assert field_of(client.post("/api/budget", json={"rounds": False})) == ["body", "rounds"]
    assert field_of(client.post("/api/budget", json={"rounds": "3"})) == ["body", "rounds"]


def test_approval_promotes_the_pending_round_and_409_when_nothing_waits(tmp_path: Path) -> None:
    out = tmp_path / "approval"
    handle = start_scripted_run(out, rounds=2, require_approval=True)
    client = _client(out)
    _wait_for(lambda: _state(client) == "awaiting_approval")
    assert client.get("/api/status").json()["pending_approval"]["round"] == 1
    decision = client.post("/api/approval", json={"approve": True, "note": "looks good"})
    assert decision.status_code == 200 and decision.json()["round"] == 1
    handle.wait(30)
    round_1 = client.get("/api/rounds").json()[1]
    assert round_1["promoted"] and "approved" in round_1["reasons"][-1]
    again = client.post("/api/approval", json={"approve": False})
    assert again.status_code == 409 and "no promotion is waiting" in again.json()["detail"]


def test_asking_before_promotion_is_switched_on_while_the_run_goes(tmp_path: Path) -> None:
    out = tmp_path / "switch"
    client = _client(out)
    assert client.post("/api/approval/required", json={"on": True}).json()["require_approval"]
    assert client.post("/api/approval/required", json={"on": "yes"}).status_code == 422
    handle = start_scripted_run(out, rounds=1, require_approval=False)
    _wait_for(lambda: _state(client) == "awaiting_approval")
    assert client.post("/api/approval", json={"approve": False}).status_code == 200
    handle.wait(30)
    assert not client.get("/api/rounds").json()[1]["promoted"]


def test_pause_resume_and_stop_steer_a_running_loop(tmp_path: Path) -> None:
    out = tmp_path / "steer"
    handle = start_scripted_run(out, rounds=3, step_s=0.2)
    client = _client(out)
    try:

        def seen(kind: str) -> bool:
            return client.get("/api/events", params={"kind": kind}).json() != []

        assert client.post("/api/control/pause").json()["paused"] is True
        _wait_for(lambda: seen("paused"))  # the loop saw it between two steps
        assert _state(client) == "paused"
        assert client.post("/api/control/resume").json()["paused"] is False
        _wait_for(lambda: seen("resumed"))
        budget = client.post("/api/budget", json={"rounds": 5, "tasks_per_round": 4}).json()
        assert (budget["rounds"], budget["tasks_per_round"]) == (5, 4)
        assert client.post("/api/control/stop").json()["stop"] is True
        handle.wait(30)
        assert _state(client) == "stopped"
    finally:
        client.post("/api/control/stop")
        handle.wait(30)


def test_queued_tasks_are_checked_and_counted(tmp_path: Path) -> None:
    start_scripted_run(tmp_path / "tasks", rounds=1).wait(60)
    client = _client(tmp_path / "tasks")
    train = [t.model_dump(mode="json") for t in builtin_tasks("arithmetic", split="train", n=2)]
    fresh = [{**t, "id": t["id"] + "-api"} for t in train]
    assert client.post("/api/tasks", json={"tasks": fresh}).json() == {"added": 2}
    assert client.post("/api/tasks", json={"tasks": fresh}).json() == {"added": 0}
    heldout = builtin_tasks("arithmetic", split="heldout", n=1)[0].model_dump(mode="json")
    leak = client.post("/api/tasks", json={"tasks": [{**heldout, "id": "copy"}]})
    assert leak.status_code == 422 and "leaks held-out task" in leak.json()["detail"]


def test_loop_start_runs_the_loop_in_the_server_and_409_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selfimprove.loop

    def scripted(config: Any, *, resume: bool = False, show_progress: bool = False) -> Any:
        return start_scripted_run(
            config.loop.out_dir,
            rounds=config.loop.rounds,
            require_approval=config.loop.require_approval,
            resume=resume,
        )

    monkeypatch.setattr(selfimprove.loop, "start_loop", scripted)
    out = tmp_path / "started"
    config = scripted_config(tmp_path / "elsewhere", rounds=1, require_approval=True)
    client = _client(out, config=config)
    started = client.post("/api/loop/start", json={"resume": True})
    assert started.status_code == 202 and started.json()["resumed"] is False
    _wait_for(lambda: _state(client) == "awaiting_approval")
    busy = client.post("/api/loop/start")
    assert busy.status_code == 409 and "already running" in busy.json()["detail"]
    client.post("/api/approval", json={"approve": True})
    client.app.state.console.loop.wait(30)
    assert _state(client) == "finished" and len(client.get("/api/rounds").json()) == 2
    fresh = client.post("/api/loop/start", json={"resume": False})
    assert fresh.status_code == 409 and "already exists" in fresh.json()["detail"]


# -- agents ----------------------------------------------------------------------------------
def test_verify_grades_code_in_the_sandbox(client: TestClient) -> None:
    tasks = builtin_tasks("code", split="heldout", n=2)
    body = {
        "tasks": [t.model_dump(mode="json") for t in tasks],
        "completions": [tasks[0].reference, "def nothing():\n    return None\n"],
    }
    verdicts = client.post("/api/verify", json=body).json()
    assert [v["passed"] for v in verdicts] == [True, False]
    assert verdicts[0]["reason"] == "all tests passed"


def test_inject_plants_verified_errors_in_a_correct_answer(client: TestClient) -> None:
    task = builtin_tasks("arithmetic", split="heldout", n=1)[0]
    body = {"task": task.model_dump(mode="json"), "completion": task.answer, "per_answer": 2}
    injections = client.post("/api/inject", json=body).json()
    assert 1 <= len(injections) <= 2
    assert all(i["text"] != task.answer and i["reason"] for i in injections)
    wrong = client.post("/api/inject", json={**body, "completion": "no idea"})
    assert wrong.status_code == 422 and "correct answer" in wrong.json()["detail"]
    unknown = client.post("/api/inject", json={**body, "operators": ["nope"]})
    assert unknown.status_code == 422 and "unknown operators" in unknown.json()["detail"]


def test_induce_workflows_from_solved_tasks(client: TestClient) -> None:
    tasks = builtin_tasks("arithmetic", split="train", n=6)
    body = {
        "tasks": [t.model_dump(mode="json") for t in tasks],
        "answers": [t.answer for t in tasks],
    }
    workflows = client.post("/api/workflows/induce", json=body).json()
    assert workflows and all(w["scope"].startswith("arithmetic:") and w["text"] for w in workflows)


def test_chat_answers_slash_commands_without_a_model(client: TestClient) -> None:
    pytest.importorskip("selfimprove.console.operator")
    reply = client.post("/api/chat", json={"message": "/status"})
    assert reply.status_code == 200 and "finished" in reply.json()["reply"]
    assert client.post("/api/chat", json={"message": ""}).status_code == 422


def test_model_agents_run_the_runs_own_student(tmp_path: Path) -> None:
    from selfimprove.testing import tiny_model

    config = Config()
    config.student.model = str(tiny_model())
    config.student.max_new_tokens = 8
    client = _client(tmp_path / "empty", config=config)  # no run yet: the given config's student
    tasks = [t.model_dump(mode="json") for t in builtin_tasks("arithmetic", split="heldout", n=2)]
    attempts = client.post("/api/generate", json={"tasks": tasks, "n": 2})
    assert attempts.status_code == 200, attempts.text
    assert len(attempts.json()) == 4 and all("verdict" in a for a in attempts.json())
    teacher = client.post("/api/generate", json={"tasks": tasks, "model": "teacher"})
    assert teacher.status_code == 409 and "no teacher" in teacher.json()["detail"]
    critiques = client.post("/api/critique", json={"tasks": tasks[:1], "answers": ["7"]})
    assert critiques.status_code == 200 and critiques.json()[0]["task_id"] == tasks[0]["id"]
    code = builtin_tasks("code", split="heldout", n=2)
    body = {
        "tasks": [t.model_dump(mode="json") for t in code],
        "completions": [code[0].reference, "def nothing(): pass"],
        "turns": 1,
    }
    debugged = client.post("/api/debug", json=body).json()
    assert debugged[0]["verdict"]["passed"] and debugged[0]["turns"] == []  # nothing to fix
    assert not debugged[1]["verdict"]["passed"] and len(debugged[1]["turns"]) == 1
