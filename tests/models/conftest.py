"""Shared fixtures for the model backend tests: the tiny random Llama, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfimprove.models.local import TransformersModel
from selfimprove.testing import tiny_model


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny(tiny_path: Path) -> TransformersModel:
    """Shared, so tests must not change its settings; load a fresh one for that."""
    return TransformersModel.load(str(tiny_path), device="cpu", batch_size=4)
