"""Fixtures for the trainer tests: the tiny random Llama, arithmetic rows, fast configs.

The tests train for real (TRL, peft, the merge, the save) on a ~1M-parameter
model, a few rows and a few steps, like TRL's own trainer tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from selfimprove.config import TrainingConfig
from selfimprove.testing import tiny_model


def addition_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` prompt/completion rows of two-digit addition."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        rows.append({"prompt": f"What is {a} + {b}?", "completion": str(a + b)})
    return rows


def addition_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` DPO pairs: the right sum chosen, an off-by-one sum rejected."""
    return [
        {
            "prompt": r["prompt"],
            "chosen": r["completion"],
            "rejected": str(int(r["completion"]) + 1),
        }
        for r in addition_rows(n, seed)
    ]


@pytest.fixture(autouse=True)
def _one_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    # A 128-wide model gains nothing from threads, and on a shared 2-core machine
    # oversubscribed threads made each step 10-50x slower. The real model (slow
    # tests) keeps its threads.
    if request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture
def sft_data() -> Dataset:
    return Dataset.from_list(addition_rows(16))


@pytest.fixture
def dpo_data() -> Dataset:
    return Dataset.from_list(addition_pairs(16, seed=1))


@pytest.fixture
def fast() -> TrainingConfig:
    """Three steps of four rows: enough to see the loss and the weights move."""
    return TrainingConfig(max_steps=3, batch_size=4, learning_rate=1e-3, max_length=64)
