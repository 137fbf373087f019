"""Preference training on (correct, wrong) pairs: a thin wrapper over TRL's ``DPOTrainer``.

    from selfimprove.memory.export import dpo_dataset
    from selfimprove.trainers import train_dpo
    result = train_dpo(sft_model_dir, dpo_dataset(pairs), TrainingConfig(), Path("runs/r1/model"))

The reference model is the starting model itself: with LoRA, TRL computes the
reference log-probabilities with the adapter switched off (no second copy in
memory); with full fine-tuning (``lora: false``) it keeps a frozen copy. ``beta``
is ``TrainingConfig.dpo_beta``, the steps ``dpo_max_steps`` (or ``max_steps``) and
the rate ``dpo_learning_rate`` (or ``learning_rate``). The result is saved like
SFT's: merged, atomically, with a manifest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset
from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
from trl import DPOConfig, DPOTrainer

from selfimprove.config import TrainingConfig
from selfimprove.trainers.callbacks import StepLog, quiet_libraries
from selfimprove.trainers.checkpoint import StagedOutput, save_merged
from selfimprove.trainers.data import dpo_rows
from selfimprove.trainers.manifest import TrainResult
from selfimprove.trainers.settings import lora_config, trainer_args
from selfimprove.trainers.stage import (
    build_result,
    model_folder,
    publish,
    require_rows,
    stage_result,
)


def train_dpo(
    base: str | Path,
    dataset: Dataset,
    config: TrainingConfig,
    out_dir: Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train ``base`` to prefer ``chosen`` over ``rejected``; save the merged model to ``out_dir``.

    Args:
        base: A Hugging Face model folder; it is also the DPO reference.
        dataset: ``prompt``/``chosen``/``rejected`` rows (plain text or chat turns).
        config: Steps, batch size, ``dpo_beta``, ``dpo_learning_rate``, LoRA, precision.
        out_dir: The new model folder; it must not exist yet (or be empty).
        progress: Draw a progress bar over the steps.
        overwrite: Replace an existing ``out_dir`` once training has succeeded.
        callbacks: Extra ``transformers.TrainerCallback`` s (early stopping, logging).

    Returns:
        The result, also written to ``out_dir/manifest.json``.

    Raises:
        ValueError: ``base`` is not a model folder, or the dataset is empty or
            lacks a column.
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    started = time.time()
    base = model_folder(base)
    require_rows(dataset, "dpo")
    learning_rate = config.dpo_learning_rate or config.learning_rate
    config = config.model_copy(update={"max_steps": config.dpo_max_steps or config.max_steps})
    with (
        quiet_libraries(),
        StagedOutput(out_dir, overwrite=overwrite) as staged,  # refuses a used out_dir now
        StepLog("DPO", config.max_steps, progress=progress) as log,
    ):
        tokenizer = AutoTokenizer.from_pretrained(base)
        args = DPOConfig(
            **trainer_args(config, staged.scratch, learning_rate),
            beta=config.dpo_beta,
        )
        trainer = DPOTrainer(
            model=str(base),
            ref_model=None,  # the start model is the reference (adapter off, or a frozen copy)
            args=args,
            train_dataset=dpo_rows(dataset, tokenizer, chat=config.chat_template),
            processing_class=tokenizer,
            peft_config=lora_config(config),
            callbacks=[log, *callbacks],
        )
        trainer.remove_callback(PrinterCallback)  # StepLog reports the steps instead
        trainer.train()
        stage = stage_result(
            "dpo", base, dataset, trainer, log, learning_rate=learning_rate, beta=config.dpo_beta
        )
        save_merged(trainer, base, staged.model, lora=config.lora)
        result = build_result(
            method="dpo",
            base=base,
            out_dir=staged.out_dir,
            stages=[stage],
            datasets={"dpo": dataset},
            config=config,
            started=started,
            processes=trainer.accelerator.num_processes,
        )
        return publish(trainer, staged, result)
