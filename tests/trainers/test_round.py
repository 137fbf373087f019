"""train_round: method dispatch, SFT then DPO chaining, skipped stages, the round manifest."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from transformers import TrainerCallback

from selfimprove.config import TrainingConfig
from selfimprove.trainers import dataset_info, load_manifest, train_round
from selfimprove.trainers.round import plan_stages


class FailInDPO(TrainerCallback):
    """Raises when the second stage (DPO) starts training."""

    def __init__(self) -> None:
        self.stages = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.stages += 1
        if self.stages == 2:
            raise RuntimeError("injected failure in DPO")


def test_sft_then_dpo_chains_and_records_both_stages(
    tiny_base: Path, sft_data: Dataset, dpo_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    config = fast.model_copy(update={"method": "sft_dpo"})
    out = tmp_path / "model"
    result = train_round(tiny_base, sft_data, dpo_data, config, out, progress=False)

    assert result.method == "sft_dpo" and result.base_model == str(tiny_base)
    sft, dpo = result.stages
    assert (sft.name, dpo.name) == ("sft", "dpo")
    assert sft.start_model == str(tiny_base)
    assert dpo.start_model == str(tmp_path / ".model.sft")  # DPO began from the SFT model
    assert dpo.losses[0] == pytest.approx(math.log(2), abs=1e-4)  # ...which is its reference
    assert result.losses == sft.losses + dpo.losses
    assert result.datasets["sft"] == dataset_info(sft_data)
    assert result.datasets["dpo"] == dataset_info(dpo_data)
    assert result.skipped == {}
    assert load_manifest(out) == result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the SFT folder is gone


def test_an_empty_stage_is_skipped_with_a_logged_reason(
    tiny_base: Path,
    sft_data: Dataset,
    fast: TrainingConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = fast.model_copy(update={"method": "sft_dpo"})
    no_pairs = Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []})
    with caplog.at_level(logging.WARNING, logger="selfimprove.trainers.round"):
        result = train_round(tiny_base, sft_data, no_pairs, config, tmp_path / "m", progress=False)

    assert [s.name for s in result.stages] == ["sft"]
    assert result.method == "sft_dpo"
    assert result.skipped == {"dpo": "the DPO dataset is empty"}
    assert result.datasets["dpo"].rows == 0
    assert "skipping the DPO stage" in caplog.text
    assert load_manifest(tmp_path / "m").skipped == result.skipped


def test_method_dpo_trains_only_on_pairs(
    tiny_base: Path, sft_data: Dataset, dpo_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    config = fast.model_copy(update={"method": "dpo"})
    result = train_round(tiny_base, sft_data, dpo_data, config, tmp_path / "m", progress=False)
    assert [s.name for s in result.stages] == ["dpo"]
    assert result.method == "dpo"


def test_nothing_to_train_is_a_clear_error(fast: TrainingConfig) -> None:
    empty = Dataset.from_dict({"prompt": [], "completion": []})
    with pytest.raises(ValueError, match=r"nothing to train: training.method 'sft_dpo'"):
        plan_stages("sft_dpo", empty, None)
    with pytest.raises(ValueError, match=r"method 'sft' needs SFT rows"):
        plan_stages(
            "sft", None, Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
        )
    assert plan_stages(
        "sft_dpo", None, Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    )[0] == ["dpo"]


def test_both_empty_raises_before_touching_the_disk(
    tiny_base: Path, fast: TrainingConfig, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="nothing to train"):
        train_round(tiny_base, None, None, fast, tmp_path / "m", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_crash_in_the_second_stage_leaves_nothing_behind(
    tiny_base: Path, sft_data: Dataset, dpo_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    config = fast.model_copy(update={"method": "sft_dpo"})
    with pytest.raises(RuntimeError, match="injected failure in DPO"):
        train_round(
            tiny_base,
            sft_data,
            dpo_data,
            config,
            tmp_path / "m",
            progress=False,
            callbacks=[FailInDPO()],
        )
    assert list(tmp_path.iterdir()) == []


def test_load_manifest_follows_a_moved_folder_and_rejects_others(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    result = train_round(tiny_base, sft_data, None, fast, tmp_path / "m", progress=False)
    moved = tmp_path / "elsewhere"
    shutil.move(result.model_path, moved)

    loaded = load_manifest(moved / "manifest.json")
    assert loaded.model_path == moved and loaded.manifest_path == moved / "manifest.json"
    assert loaded.stages == result.stages
    with pytest.raises(ValueError, match="no training manifest"):
        load_manifest(tmp_path)
    (tmp_path / "bad.json").write_text('{"method": "sft"}')
    with pytest.raises(ValueError, match="is invalid"):
        load_manifest(tmp_path / "bad.json")
