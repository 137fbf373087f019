"""The TRL arguments every stage shares: device and precision, logging, seeds, LoRA.

Chosen from a ``TrainingConfig`` and the machine, so the same config trains on a
laptop CPU and under ``accelerate launch`` on GPUs without edits:

    args = SFTConfig(**trainer_args(config, scratch, config.learning_rate), ...)
    trainer = SFTTrainer(..., args=args, peft_config=lora_config(config))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig

from selfimprove.config import TrainingConfig


def on_gpu() -> bool:
    """True when training will run on a CUDA device."""
    return torch.cuda.is_available()


def use_bf16(config: TrainingConfig) -> bool:
    """Whether to train with bf16 autocast over float32 weights.

    Raises:
        ValueError: ``precision: bf16`` on a GPU without bf16 support.
    """
    if config.precision == "fp32":
        return False
    # CPUs autocast to bf16 in software: ~20% faster here (shared/STACK.md).
    supported = not on_gpu() or torch.cuda.is_bf16_supported()
    if config.precision == "bf16" and not supported:
        raise ValueError(
            f"precision {config.precision!r} needs a GPU with bf16 support, and "
            f"{torch.cuda.get_device_name()!r} has none; use precision 'auto' or 'fp32'"
        )
    return supported


def describe_device(config: TrainingConfig) -> dict[str, Any]:
    """What the manifest records about where and how training ran."""
    return {
        "device": f"cuda ({torch.cuda.get_device_name()})" if on_gpu() else "cpu",
        "precision": "bf16-mixed" if use_bf16(config) else "fp32",
        "weights_dtype": "float32",
    }


def trainer_args(config: TrainingConfig, scratch: Path, learning_rate: float) -> dict[str, Any]:
    """Keyword arguments shared by ``SFTConfig`` and ``DPOConfig``.

    Args:
        config: The round's training settings.
        scratch: A throwaway folder for the trainer's own files (nothing is
            checkpointed there; the merged model is saved elsewhere).
        learning_rate: The stage's rate (DPO may use its own).
    """
    return {
        "output_dir": str(scratch),
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": learning_rate,
        "max_length": config.max_length,
        "seed": config.seed,
        "data_seed": config.seed,
        # TRL defaults to GPU bf16, which fails on CPU; use_cpu keeps bf16 autocast there.
        "use_cpu": not on_gpu(),
        "bf16": use_bf16(config),
        # transformers 5 renamed gradient_checkpointing (TRL defaults the old name to True).
        "activation_checkpointing": config.gradient_checkpointing,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        # Our own rich bar replaces the trainer's tqdm bar (see callbacks.py).
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        # Every trainable weight (adapter or full) takes part in each step; saying so
        # spares DDP a second pass over the graph.
        "ddp_find_unused_parameters": False,
    }


def lora_config(config: TrainingConfig) -> LoraConfig | None:
    """The LoRA adapter to train, or None for full fine-tuning (``lora: false``)."""
    if not config.lora:
        return None
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha or 2 * config.lora_r,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )
