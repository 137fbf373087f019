"""decode_compact: the same completions as model.generate, with finished rows leaving the batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfimprove.models.decode import decode_compact, supports_compact
from selfimprove.models.local import TransformersModel

PROMPTS = [
    "What is 1 + 2?",
    "hello there my friend, how are you today? tell me about the river and the mountain",
    "7",
    "Write the word cat in uppercase:",
    "Which number is larger, 12 or 907?",
]


@pytest.fixture(scope="module")
def pair(tiny_path: Path) -> tuple[TransformersModel, TransformersModel]:
    """The tiny model twice: decoding with ``decode_compact`` and with ``model.generate``."""
    load = {"device": "cpu", "dtype": "float32", "batch_size": 4}
    compact = TransformersModel.load(str(tiny_path), compact=True, **load)
    plain = TransformersModel.load(str(tiny_path), compact=False, **load)
    return compact, plain


def test_the_tiny_llama_decodes_compactly_by_default(tiny: TransformersModel) -> None:
    assert supports_compact(tiny.model) and tiny.compact


@pytest.mark.parametrize("stop", [None, ["e"], ["\n\n", "o"]])
def test_greedy_completions_equal_generate(pair, stop) -> None:
    compact, plain = pair
    got = compact.generate(PROMPTS, max_tokens=10, stop=stop)
    assert got == plain.generate(PROMPTS, max_tokens=10, stop=stop)
    if stop:  # the stop strings really cut some rows short
        assert any(c.finish_reason == "stop" for [c] in got)


def test_sampling_equals_generate_for_the_same_seed(pair) -> None:
    compact, plain = pair
    kwargs = {"n": 2, "temperature": 1.0, "max_tokens": 8, "seed": 5}
    got = compact.generate(PROMPTS[:2], **kwargs)
    assert got == plain.generate(PROMPTS[:2], **kwargs)
    assert len({c.text for row in got for c in row}) > 1


def test_finished_rows_leave_the_batch(pair) -> None:
    compact, _ = pair
    rows_per_step: list[int] = []
    forward = compact.model.forward

    def counting(*args, **kwargs):
        rows_per_step.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    encoded = [compact._encode(p) for p in PROMPTS[:4]]
    width = max(map(len, encoded))
    ids = torch.tensor([[0] * (width - len(e)) + e for e in encoded])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    # Row k (in first-seen order) "hits a stop string" after limit[k] tokens.
    limit = [2, 6, 3, 6, 1, 6, 4, 6]
    seen: dict[int, int] = {}

    def stopped(generated: list[int]) -> bool:
        return len(generated) >= limit[seen.setdefault(id(generated), len(seen))]

    compact.model.forward = counting
    try:
        out = decode_compact(
            compact.model, ids, mask, max_tokens=6, eos_ids=set(), stopped=stopped, repeats=2
        )
    finally:
        compact.model.forward = forward
    assert rows_per_step[0] == 4  # one prefill per prompt, shared by its 2 samples
    assert [len(row) for row in out] == limit
    # each step feeds only the live rows: after token 1 one row has stopped, after
    # token 2 another, ...; the last four run to max_tokens
    assert rows_per_step[1:] == [7, 6, 5, 4, 4]
