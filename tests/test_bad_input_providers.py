"""Bad-input corpus, provider failures: what a chat API can do wrong, and what the user sees.

Each failure is served by a local OpenAI-compatible server (a thread in this
process) that counts the requests it saw: retried or not as the failure deserves,
and the final ``ModelError`` names the model, the api_base and what to do. Then a
whole run whose provider goes down mid-round: it fails clearly, keeps what it
stored, and resumes to exactly what an uninterrupted run stores. Last, the CLI
prints a provider failure as one message, not a traceback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.models import ModelError
from selfimprove.models.remote import LiteLLMModel
from selfimprove.runs import Run
from selfimprove.testing.runs import HELDOUT, TRAIN, start_scripted_run

FAST: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05}
HTML = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
RUNNING = "check that the server is running and reachable"
Behaviour = Callable[["_Handler", dict[str, Any]], None]


class _Provider(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.behaviour = behaviour
        self.requests: list[float] = []  # when each request arrived
        self.lock = threading.Lock()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is the point of the test, not news


class _Handler(BaseHTTPRequestHandler):
    server: _Provider

    def do_POST(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(time.monotonic())
        self.server.behaviour(self, body)

    def reply(self, status: int, payload: Any, content_type: str = "application/json", **headers):
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        for key, value in {"Content-Type": content_type, **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def _error(status: int, message: str, **headers: str) -> Behaviour:
    payload = {"error": {"message": message, "type": "error", "code": status}}
    return lambda h, body: h.reply(status, payload, **headers)


def _raw(status: int, text: str, content_type: str) -> Behaviour:
    return lambda h, body: h.reply(status, text, content_type)


def _too_slow(h: _Handler, body: dict[str, Any]) -> None:
    time.sleep(1.0)  # past the client's timeout_s; it has hung up by now


def _closed_mid_response(h: _Handler, body: dict[str, Any]) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b'{"id": "chatcmpl-1", "choi')
    h.wfile.flush()
    h.connection.shutdown(socket.SHUT_RDWR)


def _serve(behaviour: Behaviour) -> Iterator[_Provider]:
    server = _Provider(behaviour)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[_Provider]:
    yield from _serve(_error(500, "no behaviour set"))


CASES = [  # behaviour, retried, what the message tells the user to do
    pytest.param(_too_slow, True, "raise timeout_s", id="timeout"),
    pytest.param(_error(429, "Rate limit reached"), True, "rate limiting", id="429"),
    pytest.param(_error(500, "boom"), True, RUNNING, id="500"),
    pytest.param(_raw(502, HTML, "text/html"), True, RUNNING, id="502_html_error_page"),
    pytest.param(_error(503, "overloaded"), True, RUNNING, id="503"),
    pytest.param(_raw(200, "this is not json", "application/json"), True, "/v1", id="invalid_json"),
    pytest.param(_raw(200, HTML, "text/html"), True, "/v1", id="200_html_page"),
    pytest.param(_closed_mid_response, True, RUNNING, id="closed_mid_response"),
    pytest.param(_error(401, "Incorrect API key provided"), False, "check the API key", id="401"),
    pytest.param(_error(403, "not allowed"), False, "may use this model", id="403"),
    pytest.param(
        _error(404, "The model `served-model` does not exist"),
        False,
        "check the model name and that the server at api_base serves it",
        id="404_unknown_model",
    ),
]


@pytest.mark.parametrize(("behaviour", "retried", "hint"), CASES)
def test_each_failure_is_retried_or_not_and_says_what_to_do(server, behaviour, retried, hint):
    server.behaviour = behaviour
    timeout_s = 0.3 if behaviour is _too_slow else 10.0  # the others answer at once
    model = LiteLLMModel(
        "openai/served-model", api_base=server.api_base, max_retries=2, timeout_s=timeout_s, **FAST
    )
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        model.generate(["What is 2 + 2?"])
    assert len(server.requests) == (3 if retried else 1)
    message = str(info.value)
    assert "'openai/served-model'" in message and repr(server.api_base) in message
    assert ("failed after 3 attempts" in message) == retried
    assert hint in message.rsplit(";", 1)[-1]  # the last clause is what to do
    assert time.monotonic() - started < 30  # bounded (the first call also imports litellm)


def test_retry_after_is_honoured(server):
    server.behaviour = _error(429, "slow down", **{"Retry-After": "0.3"})
    model = LiteLLMModel(
        "openai/served-model", api_base=server.api_base, max_retries=1, backoff_s=0.01
    )
    with pytest.raises(ModelError, match="rate limiting"):
        model.generate(["q"])
    first, second = server.requests
    assert second - first >= 0.3  # the server's wait, not the 0.01 s backoff


@pytest.mark.parametrize(
    ("error", "attempts", "hint"),
    [
        ("litellm.RateLimitError", 3, "raise your quota"),
        ("litellm.ContextWindowExceededError", 1, "longer than the model's context"),
    ],
    ids=["mock_rate_limit", "mock_context_window"],
)
def test_mock_errors_say_what_to_do(error, attempts, hint):
    calls: list[int] = []
    model = LiteLLMModel(
        "openai/test-model",
        mock_response=lambda messages: calls.append(1) or error,
        max_retries=2,
        **FAST,
    )
    with pytest.raises(ModelError, match=hint):
        model.generate(["q"])
    assert len(calls) == attempts


# -- a whole run whose provider goes down mid-round, then comes back --------------------
ANSWERS = {t.prompt: t.answer for t in (HELDOUT + TRAIN)[::2]}  # right on half the tasks


def _answer(h: _Handler, body: dict[str, Any]) -> None:
    if h.server.broken:  # type: ignore[attr-defined]
        h.reply(503, {"error": {"message": "upstream down", "code": 503}})
        return
    reply = ANSWERS.get(body["messages"][-1]["content"], "no idea")
    n = body.get("n", 1)
    choices = [
        {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}
        for i in range(n)
    ]
    usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
    response = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"]}
    h.reply(200, response | {"choices": choices, "usage": usage})


@pytest.fixture(scope="module")
def provider() -> Iterator[_Provider]:
    for server in _serve(_answer):
        server.broken = False  # type: ignore[attr-defined]
        yield server


def _student(provider: _Provider) -> Callable[[str], LiteLLMModel]:
    def load(path: str) -> LiteLLMModel:
        return LiteLLMModel(f"openai/{path}", api_base=provider.api_base, max_retries=1, **FAST)

    return load


def _stored_ids(out: Path) -> set[str]:
    return {e.id for e in Run(out).store.find()}


@pytest.fixture(scope="module")
def uninterrupted(provider, tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    start_scripted_run(out, rounds=2, student=_student(provider)).wait(timeout=120)
    assert Run(out).status().state == "finished"
    return _stored_ids(out)


@pytest.mark.parametrize(
    ("fail_at", "failing_model"),
    [("round_started", "base"), ("collected", "model-2")],
    ids=["down_during_collection", "down_during_evaluation"],
)
def test_provider_down_mid_round_fails_clearly_then_resumes(
    provider, uninterrupted, tmp_path, fail_at, failing_model
):
    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == fail_at and data.get("round") == 2:
            provider.broken = True  # type: ignore[attr-defined]

    out = tmp_path / "run"
    try:
        handle = start_scripted_run(out, rounds=2, student=_student(provider), on_event=on_event)
        with pytest.raises(ModelError, match=RUNNING):
            handle.wait(timeout=120)
    finally:
        provider.broken = False  # type: ignore[attr-defined]
    status = Run(out).status()
    assert status.state == "failed" and status.rounds_done == 1
    [failed] = Run(out).events(kinds={"run_failed"})
    error = failed.data["error"]
    assert error.startswith("ModelError: ") and f"'openai/{failing_model}'" in error
    assert repr(provider.api_base) in error
    kept = _stored_ids(out)
    assert kept and kept <= uninterrupted  # what was stored is still there
    assert (kept < uninterrupted) == (fail_at == "round_started")  # round 2's, when collected

    start_scripted_run(out, rounds=2, student=_student(provider), resume=True).wait(timeout=120)
    assert Run(out).status().state == "finished" and Run(out).status().rounds_done == 2
    after = Run(out)
    assert _stored_ids(out) == uninterrupted and after.store.count() == len(uninterrupted)


def test_cli_run_prints_a_provider_failure_as_one_message(server, tmp_path, monkeypatch):
    server.behaviour = _error(401, "Incorrect API key provided: sk-[/redacted]")
    teacher = LiteLLMModel("openai/teacher", api_base=server.api_base, **FAST)

    def run_loop(config: Any, **kwargs: Any) -> Any:
        return teacher.generate(["critique this"])  # the teacher fails as in a real round

    monkeypatch.setattr("selfimprove.loop.run_loop", run_loop)
    config = tmp_path / "run.yaml"
    config.write_text("loop:\n  rounds: 1\n")
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert "error: model 'openai/teacher'" in result.output
    assert "sk-[/redacted]" in result.output  # printed as sent, not read as markup
    assert "check the API key" in result.output and "--resume" in result.output
