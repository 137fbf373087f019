"""Fixtures for the example-store tests: embeddings, a sample corpus, stores of every backend.

``make_store()`` returns a fresh empty store of the backend under test; the
``backend`` fixture is parametrized over in-memory, embedded Chroma and a
Chroma server (``chroma run`` on 127.0.0.1, started once per session, skipped
with a reason when the CLI is missing or does not start).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selfimprove.memory import ChromaStore, ExampleStore, HashEmbeddings, InMemoryStore
from selfimprove.memory.embeddings import MiniLMEmbeddings
from selfimprove.types import Example

BACKENDS = ["memory", "chroma", "chroma-http"]
_SERVER_START_S = 15.0


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


@pytest.fixture(scope="session")
def hashing() -> HashEmbeddings:
    return HashEmbeddings()


def _chroma_cli() -> str | None:
    beside = Path(sys.executable).parent / "chroma"
    return str(beside) if beside.exists() else shutil.which("chroma")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(process: subprocess.Popen, port: int) -> bool:
    import chromadb

    deadline = time.monotonic() + _SERVER_START_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
            return True
        except Exception:  # not listening yet
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A Chroma server on 127.0.0.1 for the session: ``(host, port)``; always stopped."""
    cli = _chroma_cli()
    if cli is None:
        pytest.skip("the chroma CLI is not installed (it comes with the chromadb package)")
    folder = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [cli, "run", "--path", str(folder / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        if not _wait_until_up(process, port):
            tail = (folder / "server.log").read_text(errors="replace")[-800:]
            pytest.skip(f"`chroma run` did not answer within {_SERVER_START_S}s: {tail!r}")
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., ExampleStore]:
    """A factory of fresh, empty stores of the backend under test (hashing embeddings by default)."""

    def make(embeddings: object = None) -> ExampleStore:
        embeddings = embeddings if embeddings is not None else HashEmbeddings()
        name = "t" + uuid.uuid4().hex[:12]
        if backend == "memory":
            return InMemoryStore(embeddings)
        if backend == "chroma":
            return ChromaStore.persistent(tmp_path / "db", name, embeddings)
        host, port = request.getfixturevalue("chroma_server")
        return ChromaStore.http(host, port, name, embeddings)

    return make


def sample_corpus() -> dict[str, Example]:
    """Six examples covering every kind, None and non-None lineage, and typed metadata."""
    return {
        "pos": Example(
            kind="positive",
            prompt="What is 17 + 25?",
            completion="42",
            task_id="add-1",
            model="smollm2",
            passed=True,
            reason="exact match",
            metadata={"suite": "arith", "score": 1.0, "tries": 1, "hard": False},
        ),
        "neg": Example(
            kind="negative",
            prompt="What is 17 + 25?",
            completion="32",
            task_id="add-1",
            round=1,
            agent="injector",
            model="smollm2",
            parent_id="p-root",
            passed=False,
            reason="off by ten",
            error_type="off_by_ten",
            metadata={"suite": "arith", "score": 0.0, "tries": 3, "hard": True},
        ),
        "pair": Example(
            kind="pair",
            prompt="What is 17 + 25?",
            completion="42",
            rejected="32",
            task_id="add-1",
            round=1,
            parent_id="p-root",
            metadata={"suite": "arith"},
        ),
        "rev": Example(
            kind="positive",
            prompt="Reverse the string 'hello'.",
            completion="olleh",
            task_id="rev-1",
            round=2,
            agent="teacher",
            model="gpt",
            passed=True,
            metadata={"suite": "strings", "score": 0.5, "tries": 2},
        ),
        "wf": Example(
            kind="workflow",
            prompt="How do I add two numbers by hand?",
            completion="1. Line up the digits. 2. Add each column, carrying tens.",
            round=3,
            agent="curator",
        ),
        "att": Example(
            kind="attempt",
            prompt="Sort the list [3, 1, 2].",
            completion="[1, 2, 3]",
            task_id="sort-1",
            round=2,
            metadata={"suite": "lists", "tries": 1},
        ),
    }


@pytest.fixture
def corpus() -> dict[str, Example]:
    return sample_corpus()
