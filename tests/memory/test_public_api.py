"""The public surface of selfimprove.memory: small, sorted, importable."""

from __future__ import annotations

import selfimprove.memory as memory


def test_all_is_sorted_and_importable():
    assert memory.__all__ == sorted(memory.__all__)
    for name in memory.__all__:
        assert getattr(memory, name) is not None, name


def test_no_module_level_stores():
    stores = (memory.ChromaStore, memory.InMemoryStore)
    assert not [name for name, value in vars(memory).items() if isinstance(value, stores)]
