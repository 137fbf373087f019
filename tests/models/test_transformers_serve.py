"""LiteLLMModel against a real OpenAI-compatible server: ``transformers serve`` on the tiny model.

The fake servers in ``test_remote.py`` speak the protocol as we read it; this one is the
server a user points the student or teacher at. Slow (the server takes 30-40 s to start
on 2 cores): ``pytest -m slow tests/models/test_transformers_serve.py``.

Two things ``transformers serve`` 5.23 does differently from vLLM, both seen here:
it ignores ``n`` (LiteLLMModel tops the samples up with one request each), and it
ignores ``temperature`` unless the served folder's ``generation_config.json`` says
``"do_sample": true`` (so the fixture serves a copy that does).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from selfimprove.config import is_ci
from selfimprove.eval.evaluate import evaluate
from selfimprove.models.base import metering
from selfimprove.models.local import TransformersModel
from selfimprove.models.remote import LiteLLMModel
from selfimprove.tasks import builtin_tasks
from selfimprove.tasks.verifiers import Grader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

START_TIMEOUT_S = 240  # measured 30-50 s on a busy 2-core machine
SUITES = ("arithmetic", "compare", "strings")


@dataclass(frozen=True)
class Served:
    folder: Path  # what the server serves (also its model name)
    api_base: str

    def client(self, max_concurrency: int = 8) -> LiteLLMModel:
        # The served name is the folder's path: litellm sends what follows "openai/".
        return LiteLLMModel(
            f"openai/{self.folder}",
            api_base=self.api_base,
            max_concurrency=max_concurrency,
            max_retries=1,
        )


def _cannot_serve(reason: str, *, ours: bool) -> NoReturn:
    """Skip, but fail under CI when the cause is on our side (a dependency, our model)."""
    if ours and is_ci():
        pytest.fail(f"transformers serve: {reason}")
    pytest.skip(f"transformers serve: {reason}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _start(cli: str, folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server and wait for ``/health``; a lost race for the port is retried."""
    for _ in range(3):
        port = _free_port()
        command = [cli, "serve", str(folder), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--device", "cpu"]
        with log.open("wb") as out:
            # The environment carries HF_HUB_OFFLINE=1 (set by importing selfimprove).
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _healthy(port):
                return process, port
            time.sleep(0.5)
        tail = log.read_text(errors="replace")[-2000:]
        if process.poll() is None:
            _stop(process)
            _cannot_serve(f"not ready within {START_TIMEOUT_S} s; log:\n{tail}", ours=True)
        if "address already in use" not in tail.lower():
            _cannot_serve(f"exited with {process.returncode} before ready; log:\n{tail}", ours=True)
    _cannot_serve("lost the race for a free loopback port 3 times", ours=False)


@pytest.fixture(scope="module")
def served(tiny_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from transformers.utils.import_utils import is_serve_available

    cli = shutil.which("transformers", path=os.path.dirname(sys.executable))
    if cli is None:
        _cannot_serve("no `transformers` CLI beside this Python", ours=True)
    if not is_serve_available():
        _cannot_serve(
            "needs fastapi, uvicorn, pydantic and openai (pip install 'transformers[serving]')",
            ours=True,
        )
    try:
        _free_port()
    except OSError as exc:
        _cannot_serve(f"cannot bind a loopback port here: {exc}", ours=False)
    root = tmp_path_factory.mktemp("serve")
    folder = root / "tiny-sampling"
    shutil.copytree(tiny_path, folder)
    settings = folder / "generation_config.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "do_sample": True}))
    process, port = _start(str(cli), folder, root / "serve.log")
    try:
        yield Served(folder, f"http://127.0.0.1:{port}/v1")
    finally:
        _stop(process)


def test_samples_n_with_stop_strings(served: Served) -> None:
    model = served.client(max_concurrency=4)
    prompts = ["What is 12 + 30?", "Which is larger, 4 or 9?", "Uppercase: cat", "def f(x):"]
    stop = ["\n\n", "ZZ"]
    out = model.generate(prompts, n=3, temperature=1.0, max_tokens=12, stop=stop, seed=7)

    assert [len(row) for row in out] == [3, 3, 3, 3]
    completions = [c for row in out for c in row]
    assert all(not any(s in c.text for s in stop) for c in completions), completions
    assert all(c.finish_reason in ("stop", "length") for c in completions)
    # The server answers one choice whatever n says: 3 requests per prompt.
    assert model.usage.calls == 12
    assert model.usage.prompt_tokens > 0 and model.usage.completion_tokens > 0
    assert sum(c.tokens for c in completions) == model.usage.completion_tokens
    assert model.usage.unpriced_calls == 12 and model.usage.cost_usd == 0.0
    # Sampling happened (do_sample in the served folder) and each top-up had its own seed.
    assert any(len({c.text for c in row}) > 1 for row in out), out


def test_evaluate_builtin_tasks_matches_the_local_backend(served: Served) -> None:
    tasks = [t for suite in SUITES for t in builtin_tasks(suite, split="heldout", n=3)]
    model = served.client()
    with metering() as spent:
        remote = evaluate(model, tasks, Grader(), show_progress=False)

    assert remote.n_tasks == len(tasks) and set(remote.suites) == set(SUITES)
    assert all(len(r.attempts) == 1 for r in remote.results)
    assert spent.calls == len(tasks) == model.usage.calls
    assert spent.prompt_tokens > 0 and spent.completion_tokens > 0
    assert spent.completion_tokens == model.usage.completion_tokens

    # Greedy through the server = greedy in-process, up to whitespace: the server's stop
    # strings also match across the end of the prompt (the chat template's "assistant\n"
    # plus a generated "\n" is "\n\n"), so it can stop one newline early.
    local = TransformersModel.load(str(served.folder), device="cpu", dtype="float32")
    here = evaluate(local, tasks, Grader(), show_progress=False)
    texts = [[a.completion.strip() for a in r.attempts] for r in remote.results]
    assert texts == [[a.completion.strip() for a in r.attempts] for r in here.results]
    assert remote.pass_at_1 == here.pass_at_1
