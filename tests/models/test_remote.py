"""LiteLLMModel: mock responses, retries, a real local OpenAI-compatible server, usage."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from selfimprove.config import ModelConfig
from selfimprove.models import ModelError, load_model
from selfimprove.models.base import metering
from selfimprove.models.remote import LiteLLMModel, _split_tokens

FAST: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail_first: int, honour_n: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail_first = fail_first
        self.honour_n = honour_n
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    """Speaks just enough of the OpenAI chat-completions API; 429 for the first requests."""

    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
            failing = len(self.server.requests) <= self.server.fail_first
        if failing:
            self._send(429, {"error": {"message": "slow down", "type": "rate_limit_error"}})
            return
        n = body.get("n", 1) if self.server.honour_n else 1
        prompt = body["messages"][-1]["content"]
        choices = [
            {
                "index": i,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"echo {prompt} #{i}\nmore"},
            }
            for i in range(n)
        ]
        self._send(
            200,
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": choices,
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": 5 * n,
                    "total_tokens": 7 + 5 * n,
                },
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


def _serve(fail_first: int = 0, honour_n: bool = True) -> Iterator[_Server]:
    server = _Server(fail_first, honour_n)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def flaky_server() -> Iterator[_Server]:
    yield from _serve(fail_first=1)


@pytest.fixture
def no_n_server() -> Iterator[_Server]:
    yield from _serve(honour_n=False)


def test_mock_response_and_unpriced_usage() -> None:
    model = LiteLLMModel("openai/test-model", mock_response="42")
    out = model.generate(["What is 6 * 7?", [{"role": "user", "content": "again"}]])
    assert [[c.text for c in row] for row in out] == [["42"], ["42"]]
    assert all(row[0].finish_reason == "stop" for row in out)
    # litellm's mock reports 10 prompt and 20 completion tokens per response.
    assert out[0][0].tokens == 20
    usage = model.usage
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (2, 20, 40)
    assert usage.cost_usd == 0.0 and usage.unpriced_calls == 2


def test_known_model_is_priced_from_the_local_cost_map() -> None:
    model = LiteLLMModel("gpt-4o-mini", mock_response="ok")
    model.generate(["a", "b"])
    assert model.usage.unpriced_calls == 0
    assert model.usage.cost_usd > 0


def test_metering_totals_concurrent_requests_in_its_block_only() -> None:
    model = LiteLLMModel("gpt-4o-mini", mock_response="ok", max_concurrency=4)
    model.generate(["before"])
    with metering() as outer:
        with metering() as inner:
            model.generate(["a", "b", "c", "d"])  # four requests on four worker threads
        model.generate(["e"])
    model.generate(["after"])
    assert (inner.calls, inner.prompt_tokens, inner.completion_tokens) == (4, 40, 80)
    assert outer.calls == 5 and outer.cost_usd == pytest.approx(inner.cost_usd * 5 / 4)
    assert model.usage.calls == 7 and inner.cost_usd > 0


def test_sampling_n_and_stop_with_mock() -> None:
    model = LiteLLMModel("openai/test-model", mock_response="first line\nsecond")
    [row] = model.generate(["q"], n=3, temperature=0.8, stop=["\n"])
    assert [c.text for c in row] == ["first line"] * 3
    assert all(c.finish_reason == "stop" for c in row)
    assert sum(c.tokens for c in row) == model.usage.completion_tokens
    greedy = LiteLLMModel("openai/test-model", mock_response="x")
    [row] = greedy.generate(["q"], n=4, temperature=0)
    assert len(row) == 4 and greedy.usage.calls == 1  # greedy: one request, repeated


def test_rate_limit_is_retried_then_succeeds() -> None:
    replies = iter(["litellm.RateLimitError", "litellm.InternalServerError", "fine"])
    seen: list[list[dict[str, str]]] = []

    def mock(messages: list[dict[str, str]]) -> str:
        seen.append(messages)
        return next(replies)

    model = LiteLLMModel("openai/test-model", mock_response=mock, max_retries=3, **FAST)
    [[c]] = model.generate(["q"])
    assert c.text == "fine"
    assert len(seen) == 3
    assert model.usage.calls == 1


def test_retries_exhausted_names_the_model() -> None:
    model = LiteLLMModel(
        "openai/test-model", mock_response="litellm.RateLimitError", max_retries=2, **FAST
    )
    with pytest.raises(ModelError, match=r"'openai/test-model' failed after 3 attempts.*RateLimit"):
        model.generate(["q"])


def test_errors_retrying_cannot_fix_are_raised_at_once() -> None:
    calls = []

    def mock(messages: list[dict[str, str]]) -> str:
        calls.append(1)
        return "litellm.ContextWindowExceededError"

    model = LiteLLMModel("openai/test-model", mock_response=mock, max_retries=3, **FAST)
    with pytest.raises(ModelError, match="retrying cannot fix"):
        model.generate(["q"])
    assert len(calls) == 1


def test_local_server_429_then_200_through_api_base(flaky_server: _Server) -> None:
    model = LiteLLMModel("openai/served-model", api_base=flaky_server.api_base, **FAST)
    [row] = model.generate(["hello"], n=2, temperature=0.7, stop=["\n"], seed=5, max_tokens=9)
    assert [c.text for c in row] == ["echo hello #0", "echo hello #1"]
    assert len(flaky_server.requests) == 2  # the 429, then the retry
    request = flaky_server.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer none"
    body = request["body"]
    assert body["model"] == "served-model"
    assert (body["n"], body["temperature"], body["seed"], body["stop"]) == (2, 0.7, 5, ["\n"])
    assert body["max_tokens"] == 9
    assert (model.usage.calls, model.usage.prompt_tokens, model.usage.completion_tokens) == (
        1,
        7,
        10,
    )
    assert sum(c.tokens for c in row) == 10


def test_server_ignoring_n_is_topped_up(no_n_server: _Server) -> None:
    model = LiteLLMModel(
        "openai/served-model", api_base=no_n_server.api_base, max_concurrency=2, **FAST
    )
    seen: list[int] = []
    out = model.generate(["a", "b", "c"], n=3, temperature=1.0, seed=1, progress=seen.append)
    assert [len(row) for row in out] == [3, 3, 3]
    assert [c.text for c in out[1]] == ["echo b #0\nmore"] * 3
    assert len(no_n_server.requests) == 9
    seeds = sorted(
        r["body"]["seed"]
        for r in no_n_server.requests
        if r["body"]["messages"][-1]["content"] == "a"
    )
    assert seeds == [1, 2, 3]  # repeated requests vary the seed
    assert seen == [1, 1, 1]  # one increment per finished prompt


def test_connection_refused_fails_quickly_with_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api_base = f"http://127.0.0.1:{port}/v1"
    model = LiteLLMModel(
        "openai/nothing-here", api_base=api_base, max_retries=2, timeout_s=5, **FAST
    )
    started = time.perf_counter()
    with pytest.raises(ModelError) as info:
        model.generate(["q"])
    message = str(info.value)
    assert "'openai/nothing-here'" in message and repr(api_base) in message
    assert "after 3 attempts" in message and "server is running" in message
    assert time.perf_counter() - started < 15


def test_from_config_reads_the_key_through_config_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelConfig(
        model="openai/x",
        backend="litellm",
        api_key_env="SELFIMPROVE_TEST_KEY",
        batch_size=3,
        max_retries=1,
        timeout_s=9,
    )
    monkeypatch.delenv("SELFIMPROVE_TEST_KEY", raising=False)
    with pytest.raises(ModelError, match=r"\$SELFIMPROVE_TEST_KEY"):
        load_model(config)
    monkeypatch.setenv("SELFIMPROVE_TEST_KEY", "sk-test")
    model = load_model(config)
    assert isinstance(model, LiteLLMModel)
    assert (model.api_key, model.max_concurrency, model.max_retries, model.timeout_s) == (
        "sk-test",
        3,
        1,
        9,
    )


def test_split_tokens_adds_up() -> None:
    assert _split_tokens(10, [1, 1, 2]) == [3, 2, 5]
    assert sum(_split_tokens(7, [0, 0, 0])) == 7
    assert _split_tokens(5, [3]) == [5]


def test_importing_the_models_package_stays_light() -> None:
    code = (
        "import sys, selfimprove.models, selfimprove.models.remote, selfimprove.testing.fakes; "
        "heavy = [m for m in ('litellm', 'torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
