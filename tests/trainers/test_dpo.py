"""train_dpo on the tiny Llama: the start model is the reference, weights move, settings recorded."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file

from selfimprove.config import TrainingConfig
from selfimprove.memory.export import dpo_dataset
from selfimprove.trainers import load_manifest, train_dpo
from selfimprove.types import Example

from .conftest import addition_pairs

Q_PROJ = "model.layers.0.self_attn.q_proj.weight"


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_dpo_starts_at_the_reference_and_changes_weights(
    tiny_base: Path, dpo_data: Dataset, fast: TrainingConfig, tmp_path: Path, lora: bool
) -> None:
    config = fast.model_copy(update={"lora": lora})
    result = train_dpo(tiny_base, dpo_data, config, tmp_path / "model", progress=False)

    stage = result.stages[0]
    assert stage.name == "dpo" and len(stage.losses) == config.max_steps
    # Policy == reference at step 1, so the sigmoid loss is exactly log 2: the
    # reference is the start model (adapter off with LoRA, a frozen copy without).
    assert stage.losses[0] == pytest.approx(math.log(2), abs=1e-4)
    assert "rewards/margins" in stage.history[-1]
    before = load_file(tiny_base / "model.safetensors")
    after = load_file(result.model_path / "model.safetensors")
    assert not torch.equal(before[Q_PROJ], after[Q_PROJ])
    assert not (result.model_path / "adapter_config.json").exists()


def test_beta_and_dpo_learning_rate_are_used_and_recorded(
    tiny_base: Path, dpo_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    config = fast.model_copy(update={"dpo_beta": 0.5, "dpo_learning_rate": 5e-4})
    result = train_dpo(tiny_base, dpo_data, config, tmp_path / "model", progress=False)

    stage = load_manifest(result.model_path).stages[0]
    assert stage.beta == 0.5
    assert stage.learning_rate == 5e-4
    assert stage.history[0]["learning_rate"] == pytest.approx(5e-4)
    assert result.datasets["dpo"].rows == len(dpo_data)


def test_exported_pairs_train(tiny_base: Path, fast: TrainingConfig, tmp_path: Path) -> None:
    pairs = [
        Example(kind="pair", prompt=p["prompt"], completion=p["chosen"], rejected=p["rejected"])
        for p in addition_pairs(8)
    ]
    for conversational in (False, True):
        data = dpo_dataset(pairs, conversational=conversational)
        out = tmp_path / f"model-{conversational}"
        result = train_dpo(tiny_base, data, fast, out, progress=False)
        assert len(result.stages[0].losses) == fast.max_steps


def test_missing_columns_and_empty_data_are_clear_errors(
    tiny_base: Path, fast: TrainingConfig, tmp_path: Path
) -> None:
    no_rejected = Dataset.from_dict({"prompt": ["1 + 1?"], "chosen": ["2"]})
    with pytest.raises(ValueError, match=r"missing \['rejected'\]"):
        train_dpo(tiny_base, no_rejected, fast, tmp_path / "a", progress=False)
    empty = Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []})
    with pytest.raises(ValueError, match="DPO dataset is empty"):
        train_dpo(tiny_base, empty, fast, tmp_path / "b", progress=False)
    assert list(tmp_path.iterdir()) == []
