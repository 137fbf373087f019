"""Device, precision and LoRA settings: CPU here, GPU settings picked when CUDA is present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from trl import DPOConfig, SFTConfig

from selfimprove.config import TrainingConfig
from selfimprove.trainers import settings


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch):
    """Pretend a CUDA device is present; returns a setter for its bf16 support."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")

    def bf16(supported: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)

    bf16(True)
    return bf16


def test_cpu_settings_build_valid_trl_configs(tmp_path: Path) -> None:
    config = TrainingConfig(max_steps=7, batch_size=3, seed=5)
    args = settings.trainer_args(config, tmp_path, 1e-4)
    assert args["use_cpu"] is True and args["bf16"] is True
    assert args["activation_checkpointing"] is False
    assert args["report_to"] == "none" and args["logging_steps"] == 1
    assert args["seed"] == args["data_seed"] == 5

    sft = SFTConfig(**args, completion_only_loss=True)
    assert sft.max_steps == 7 and sft.per_device_train_batch_size == 3
    assert sft.gradient_checkpointing is False and sft.use_cpu is True
    dpo = DPOConfig(
        **settings.trainer_args(config.model_copy(update={"precision": "fp32"}), tmp_path, 1e-6),
        beta=0.3,
    )
    assert dpo.bf16 is False and dpo.beta == 0.3 and dpo.learning_rate == 1e-6


def test_gpu_settings_use_bf16_and_no_cpu_flag(fake_gpu, tmp_path: Path) -> None:
    args = settings.trainer_args(TrainingConfig(), tmp_path, 1e-4)
    assert args["use_cpu"] is False and args["bf16"] is True
    assert settings.describe_device(TrainingConfig())["device"] == "cuda (Fake GPU)"


def test_a_gpu_without_bf16_falls_back_to_fp32(fake_gpu, tmp_path: Path) -> None:
    fake_gpu(False)
    assert settings.trainer_args(TrainingConfig(), tmp_path, 1e-4)["bf16"] is False
    with pytest.raises(ValueError, match="'Fake GPU' has none"):
        settings.use_bf16(TrainingConfig(precision="bf16"))


def test_lora_config() -> None:
    lora = settings.lora_config(TrainingConfig(lora_r=8))
    assert lora is not None
    assert lora.r == 8 and lora.lora_alpha == 16 and lora.task_type == "CAUSAL_LM"
    assert lora.target_modules == "all-linear"
    custom = settings.lora_config(TrainingConfig(lora_alpha=4, lora_target_modules=["q_proj"]))
    assert custom is not None and custom.lora_alpha == 4 and custom.target_modules == {"q_proj"}
    assert settings.lora_config(TrainingConfig(lora=False)) is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("lora_target_modules", []),
        ("lora_target_modules", ["q_proj", " "]),
        ("dpo_beta", 0.0),
        ("dpo_learning_rate", -1.0),
        ("precision", "fp16"),
        ("gradient_accumulation_steps", 0),
    ],
)
def test_training_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        TrainingConfig.model_validate({field: value})
