"""Test-wide guards: the default run is offline, and only loopback connections are allowed.

Any attempt to reach a non-loopback address (a real LLM API, a model hub) fails
loudly instead of hanging or leaking a request.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

import selfimprove  # noqa: F401  (sets the offline environment before anything else imports)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _allowed(address):
        raise RuntimeError(f"network access to {address!r} is blocked in tests (offline run)")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _allowed(address):
        raise RuntimeError(f"network access to {address!r} is blocked in tests (offline run)")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _offline_network_guard():
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(scope="session")
def warm_model(tmp_path_factory) -> str:
    """The tiny model after a little SFT on arithmetic answers, so it gets some tasks right
    (a loop round then has answers to train on). Built once per test session."""
    from datasets import Dataset

    from selfimprove.config import Config
    from selfimprove.tasks import builtin_tasks
    from selfimprove.testing import tiny_model
    from selfimprove.trainers import train_sft

    tasks = builtin_tasks("arithmetic", split="train", n=200, seed=99)
    rows = Dataset.from_dict(
        {"prompt": [t.prompt for t in tasks], "completion": [t.answer for t in tasks]}
    )
    config = Config().training.model_copy(
        update={"max_steps": 60, "batch_size": 16, "lora": False, "learning_rate": 3e-3}
    )
    out = tmp_path_factory.mktemp("warm") / "model"
    return str(train_sft(tiny_model(), rows, config, out, progress=False).model_path)
