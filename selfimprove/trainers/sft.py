"""Supervised fine-tuning on verified answers: a thin wrapper over TRL's ``SFTTrainer``.

    from selfimprove.memory.export import sft_dataset
    from selfimprove.trainers import train_sft
    result = train_sft(base_dir, sft_dataset(positives), TrainingConfig(), Path("runs/r1/model"))
    result.model_path, result.stages[0].losses

LoRA by default (merged into the weights before saving), loss on the completion
only, padded batches unless ``TrainingConfig.packing`` says padding-free or
packed, CPU or GPU settings picked automatically, one rich progress bar. The output
folder is a plain Hugging Face model plus ``manifest.json``, written atomically.
From a shell, ``python -m selfimprove.trainers`` runs a whole round.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling  # not re-exported by trl

from selfimprove.config import TrainingConfig
from selfimprove.trainers.callbacks import StepLog, quiet_libraries
from selfimprove.trainers.checkpoint import StagedOutput, save_merged
from selfimprove.trainers.data import sft_rows
from selfimprove.trainers.manifest import TrainResult
from selfimprove.trainers.settings import lora_config, trainer_args
from selfimprove.trainers.stage import (
    build_result,
    model_folder,
    publish,
    require_rows,
    stage_result,
)


def train_sft(
    base: str | Path,
    dataset: Dataset,
    config: TrainingConfig,
    out_dir: Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Fine-tune ``base`` on ``dataset`` and save the merged model to ``out_dir``.

    Args:
        base: A Hugging Face model folder.
        dataset: ``prompt``/``completion`` rows (plain or chat turns) or ``messages``.
        config: Steps, batch size, learning rate, LoRA and precision settings.
        out_dir: The new model folder; it must not exist yet (or be empty).
        progress: Draw a progress bar over the steps.
        overwrite: Replace an existing ``out_dir`` once training has succeeded.
        callbacks: Extra ``transformers.TrainerCallback`` s (early stopping, logging).

    Returns:
        The result, also written to ``out_dir/manifest.json``.

    Raises:
        ValueError: ``base`` is not a model folder, or the dataset is empty or
            has the wrong columns.
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    started = time.time()
    base = model_folder(base)
    require_rows(dataset, "sft")
    with (
        quiet_libraries(),
        StagedOutput(out_dir, overwrite=overwrite) as staged,  # refuses a used out_dir now
        StepLog("SFT", config.max_steps, progress=progress) as log,
    ):
        tokenizer = AutoTokenizer.from_pretrained(base)
        args = SFTConfig(
            **trainer_args(config, staged.scratch, config.learning_rate),
            completion_only_loss=True,  # learn the verified answers, not the questions
            packing=config.packing == "packed",
        )
        trainer = SFTTrainer(
            model=str(base),
            args=args,
            data_collator=_collator(config, tokenizer),
            train_dataset=sft_rows(dataset, tokenizer, chat=config.chat_template),
            processing_class=tokenizer,
            peft_config=lora_config(config),
            callbacks=[log, *callbacks],
        )
        trainer.remove_callback(PrinterCallback)  # StepLog reports the steps instead
        trainer.train()
        stage = stage_result("sft", base, dataset, trainer, log, learning_rate=config.learning_rate)
        save_merged(trainer, base, staged.model, lora=config.lora)
        result = build_result(
            method="sft",
            base=base,
            out_dir=staged.out_dir,
            stages=[stage],
            datasets={"sft": dataset},
            config=config,
            started=started,
            processes=trainer.accelerator.num_processes,
        )
        return publish(trainer, staged, result)


def _collator(config: TrainingConfig, tokenizer: Any) -> DataCollatorForLanguageModeling | None:
    """TRL's padding-free collator for ``packing: padding_free``; None lets TRL pick its own.

    TRL's own ``padding_free=True`` refuses a ``max_length`` unless rows are packed
    (it bounds rows, not the joined sequence); passing the collator keeps TRL's
    cut of each row to ``max_length`` while joining a batch's rows without padding.
    ``packing: packed`` needs nothing here: TRL's packed rows are padding-free already.
    """
    if config.packing != "padding_free":
        return None
    pad = tokenizer.pad_token_id
    # The joined row is never padded, so any id will do where the tokenizer has none.
    return DataCollatorForLanguageModeling(
        pad_token_id=pad if pad is not None else tokenizer.eos_token_id, padding_free=True
    )
