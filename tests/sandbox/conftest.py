"""Shared pools for the sandbox tests: one per isolation mode, started once per module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from selfimprove.config import SandboxConfig
from selfimprove.sandbox import SandboxPool

# Short limits keep the limit tests fast; cpu_time_s is above the 1 s wall timeouts
# the tests pass, so a busy loop there is stopped by the wall clock.
FAST = SandboxConfig(workers=2, wall_timeout_s=5.0, cpu_time_s=3, memory_mb=256)
# For the CPU and memory limits themselves.
TIGHT = SandboxConfig(workers=1, wall_timeout_s=5.0, cpu_time_s=1, memory_mb=128)


@pytest.fixture(scope="module", params=["auto", "basic"])
def pool(request: pytest.FixtureRequest) -> Iterator[SandboxPool]:
    """A two-worker pool, once with namespaces ("auto") and once without ("basic")."""
    with SandboxPool(FAST, isolation=request.param) as pool:
        yield pool


@pytest.fixture(scope="module", params=["auto", "basic"])
def tight_pool(request: pytest.FixtureRequest) -> Iterator[SandboxPool]:
    with SandboxPool(TIGHT, isolation=request.param) as pool:
        yield pool


def same_uid_without_namespaces(pool: SandboxPool) -> bool:
    """True in the weakest mode (non-root, no namespaces): the child is the caller's uid."""
    info = pool.isolation
    return info["mode"] == "basic" and info["uid"] == os.getuid()


def sandbox_uid_processes(uid: int) -> int:
    """Processes on the host owned by ``uid`` (the sandbox's uid when root)."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                count += os.stat(f"/proc/{name}").st_uid == uid
            except OSError:
                continue
    return count
