"""A grader backed by a real sandbox pool, started once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from selfimprove.config import SandboxConfig
from selfimprove.sandbox import SandboxPool
from selfimprove.tasks import Grader

# A short wall timeout: an injected bug can loop forever, and the tests should not wait 5 s.
FAST = SandboxConfig(workers=2, wall_timeout_s=2.0, cpu_time_s=2, memory_mb=256)


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    with SandboxPool(FAST) as pool:
        yield Grader(pool)
