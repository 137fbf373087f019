"""SFT batching (``TrainingConfig.packing``) on the tiny Llama: what the model reads, and the loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from transformers import TrainerCallback

from selfimprove.config import TrainingConfig
from selfimprove.trainers import train_sft

from .conftest import addition_rows


class Inputs(TrainerCallback):
    """Records the shape of what each training forward pass reads, and the logged losses."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.losses: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        kwargs["model"].register_forward_pre_hook(self._record, with_kwargs=True)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])

    def _record(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        mask, positions = kwargs.get("attention_mask"), kwargs.get("position_ids")
        self.batches.append(
            {
                "shape": tuple(kwargs["input_ids"].shape),
                "tokens": int(mask.sum()) if mask is not None else kwargs["input_ids"].numel(),
                "padded": mask is not None and bool((mask == 0).any()),
                "rows": int((positions == 0).sum()) if positions is not None else None,
                "longest": int(positions.max()) + 1 if positions is not None else None,
            }
        )


def train(base: Path, data: Dataset, config: TrainingConfig, out: Path) -> Inputs:
    inputs = Inputs()
    train_sft(base, data, config, out, progress=False, callbacks=[inputs])
    return inputs


@pytest.fixture
def ragged() -> Dataset:
    """Addition rows of several lengths, so padded batches hold padding."""
    rows = addition_rows(16)
    for i, row in enumerate(rows):
        row["prompt"] = "Please, " * (i % 4) + row["prompt"]
    return Dataset.from_list(rows)


@pytest.fixture
def exact(fast: TrainingConfig) -> TrainingConfig:
    """``fast`` in float32, so padded and padding-free losses agree to rounding."""
    return fast.model_copy(update={"precision": "fp32"})


def test_padding_free_reads_the_same_rows_unpadded_and_gets_the_same_loss(
    tiny_base: Path, ragged: Dataset, exact: TrainingConfig, tmp_path: Path
) -> None:
    padded = train(tiny_base, ragged, exact, tmp_path / "padded")
    free_config = exact.model_copy(update={"packing": "padding_free"})
    free = train(tiny_base, ragged, free_config, tmp_path / "free")

    assert all(b["padded"] for b in padded.batches)  # rows of several lengths: padding
    for p, f in zip(padded.batches, free.batches, strict=True):
        assert f["shape"][0] == 1 and not f["padded"]  # one joined row per batch
        assert f["rows"] == p["shape"][0] == exact.batch_size
        assert f["tokens"] == p["tokens"]  # the same rows' tokens, nothing more
    # Rows attend only to themselves (a block-diagonal mask), so the loss is the padded one.
    assert free.losses[0] == pytest.approx(padded.losses[0], rel=1e-4)


def test_padding_free_still_cuts_rows_to_max_length(
    tiny_base: Path, exact: TrainingConfig, tmp_path: Path
) -> None:
    long = Dataset.from_list(
        [{"prompt": "Count to 40.", "completion": " ".join(map(str, range(1, 41)))}] * 4
        + [{"prompt": "Hi", "completion": "Hello there"}] * 4
    )
    config = exact.model_copy(update={"packing": "padding_free", "max_length": 24})
    inputs = train(tiny_base, long, config, tmp_path / "model")
    assert all(b["longest"] <= 24 for b in inputs.batches)
    assert max(b["longest"] for b in inputs.batches) == 24


def test_packed_rows_fill_max_length_without_padding(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    config = fast.model_copy(update={"packing": "packed"})
    inputs = train(tiny_base, sft_data, config, tmp_path / "model")

    first = inputs.batches[0]
    assert first["shape"][0] == 1 and not first["padded"]
    # Short addition rows: each max_length bin holds several, so a step reads more rows.
    assert first["rows"] > config.batch_size
    assert len(inputs.losses) == config.max_steps and all(map(math.isfinite, inputs.losses))


def test_packing_is_refused_for_dpo_alone() -> None:
    with pytest.raises(ValueError, match="packing 'padding_free' applies to SFT only"):
        TrainingConfig(method="dpo", packing="padding_free")
    assert TrainingConfig(method="sft_dpo", packing="packed").packing == "packed"
