"""train_sft on the tiny Llama: loss logged, weights moved, merged folder, atomic save."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainerCallback

from selfimprove.config import TrainingConfig
from selfimprove.memory.export import sft_dataset
from selfimprove.models.local import TransformersModel
from selfimprove.trainers import dataset_info, load_manifest, train_sft
from selfimprove.types import Example

from .conftest import addition_rows

Q_PROJ = "model.layers.0.self_attn.q_proj.weight"
EMBED = "model.embed_tokens.weight"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


class FailAt(TrainerCallback):
    """Raises at one step, as a crash in the middle of training would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            raise RuntimeError(f"injected failure at step {self.step}")


def test_lora_sft_logs_loss_changes_weights_and_saves_a_merged_model(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    result = train_sft(tiny_base, sft_data, fast, out, progress=False)

    assert result.model_path == out
    assert [s.name for s in result.stages] == ["sft"]
    losses = result.stages[0].losses
    assert len(losses) == fast.max_steps and all(math.isfinite(x) for x in losses)
    assert result.stages[0].steps == fast.max_steps
    assert {"loss", "grad_norm", "learning_rate"} <= set(result.stages[0].history[0])

    before, after = weights(tiny_base), weights(out)
    assert not torch.equal(before[Q_PROJ], after[Q_PROJ])  # the adapter was merged in
    assert torch.equal(before[EMBED], after[EMBED])  # LoRA leaves the embeddings alone
    assert not [name for name in ADAPTER_FILES if (out / name).exists()]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_base).parameters()
    )
    assert (out / "tokenizer.json").is_file()
    assert (out / "chat_template.jinja").is_file()


def test_full_finetuning_changes_every_kind_of_weight(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    config = fast.model_copy(update={"lora": False})
    result = train_sft(tiny_base, sft_data, config, tmp_path / "model", progress=False)

    before, after = weights(tiny_base), weights(result.model_path)
    assert not torch.equal(before[Q_PROJ], after[Q_PROJ])
    assert not torch.equal(before[EMBED], after[EMBED])
    assert result.config["lora"] is False


def test_the_tiny_model_learns_to_answer(tiny_base: Path, tmp_path: Path) -> None:
    data = Dataset.from_list(addition_rows(200))
    config = TrainingConfig(
        lora=False, learning_rate=3e-3, max_steps=40, batch_size=16, max_length=64
    )
    result = train_sft(tiny_base, data, config, tmp_path / "model", progress=False)

    losses = result.stages[0].losses
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.4 * first, f"loss went {first:.2f} -> {last:.2f}"
    # Trained on chat-templated rows, it now answers a chat prompt in the trained
    # format: digits, then the end of its turn.
    model = TransformersModel.load(str(result.model_path), device="cpu")
    [[answer]] = model.generate(["What is 23 + 45?"], max_tokens=8)
    assert answer.text.strip().isdigit(), answer
    assert answer.finish_reason == "stop"


def test_manifest_records_data_versions_and_settings(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    result = train_sft(tiny_base, sft_data, fast, tmp_path / "model", progress=False)

    manifest = load_manifest(result.model_path)
    assert manifest == result
    assert result.manifest_path == result.model_path / "manifest.json"
    assert result.method == "sft" and result.base_model == str(tiny_base)
    assert result.seed == fast.seed and result.config["max_steps"] == fast.max_steps
    info = result.datasets["sft"]
    assert info.rows == len(sft_data) == result.stages[0].dataset.rows
    assert info.sha256 == dataset_info(sft_data).sha256
    assert info.sha256 != dataset_info(sft_data.select(range(15))).sha256
    assert set(result.versions) >= {
        "torch",
        "transformers",
        "trl",
        "peft",
        "accelerate",
        "datasets",
    }
    assert result.versions["trl"] == "1.16.0"
    assert result.device == "cpu" and result.precision in ("bf16-mixed", "fp32")
    assert result.seconds >= result.stages[0].seconds > 0
    assert result.processes == 1


def test_a_crash_during_training_leaves_no_folder(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    with pytest.raises(RuntimeError, match="injected failure"):
        train_sft(tiny_base, sft_data, fast, out, progress=False, callbacks=[FailAt(2)])

    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_a_used_output_folder_is_refused_before_training(
    tiny_base: Path, sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        train_sft(tiny_base, sft_data, fast, out, progress=False)
    assert (out / "old.txt").read_text() == "keep me"

    train_sft(tiny_base, sft_data, fast, out, progress=False, overwrite=True)
    assert not (out / "old.txt").exists()
    assert load_manifest(out).method == "sft"


def test_an_empty_dataset_is_a_clear_error(
    tiny_base: Path, fast: TrainingConfig, tmp_path: Path
) -> None:
    empty = Dataset.from_dict({"prompt": [], "completion": []})
    with pytest.raises(ValueError, match="SFT dataset is empty"):
        train_sft(tiny_base, empty, fast, tmp_path / "model", progress=False)
    assert not (tmp_path / "model").exists()


def test_a_folder_that_is_no_model_is_refused(
    sft_data: Dataset, fast: TrainingConfig, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        train_sft(tmp_path, sft_data, fast, tmp_path / "model", progress=False)


def test_exported_conversational_examples_train(
    tiny_base: Path, fast: TrainingConfig, tmp_path: Path
) -> None:
    examples = [
        Example(kind="positive", prompt=row["prompt"], completion=row["completion"])
        for row in addition_rows(8)
    ]
    data = sft_dataset(examples, conversational=True, with_ids=True)
    result = train_sft(tiny_base, data, fast, tmp_path / "model", progress=False)
    assert len(result.stages[0].losses) == fast.max_steps
    assert result.datasets["sft"].columns == ["example_id", "messages"]


def test_fixes_with_feedback_in_context_train_beside_plain_examples(
    tiny_base: Path, fast: TrainingConfig, tmp_path: Path
) -> None:
    rows = addition_rows(8)
    plain = [Example(kind="positive", prompt=r["prompt"], completion=r["completion"]) for r in rows]
    turns = [
        {"role": "user", "content": rows[0]["prompt"]},
        {"role": "assistant", "content": "wrong"},
        {"role": "user", "content": "That answer is wrong. The checker says: expected more."},
    ]
    fix = plain[0].model_copy(update={"metadata": {"messages": json.dumps(turns)}})
    result = train_sft(
        tiny_base, sft_dataset([*plain, fix]), fast, tmp_path / "model", progress=False
    )
    assert len(result.stages[0].losses) == fast.max_steps
    assert result.datasets["sft"].columns == ["messages"] and result.datasets["sft"].rows == 9
