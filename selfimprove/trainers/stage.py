"""The bookkeeping SFT and DPO share: checking inputs, and turning a trained stage into a result.

``sft.py`` and ``dpo.py`` read top to bottom as "prepare rows, build the TRL
trainer, train, save"; the steps before and after that live here so both stay
short and agree on the manifest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from datasets import Dataset

from selfimprove.config import TrainingConfig
from selfimprove.trainers.callbacks import StepLog
from selfimprove.trainers.checkpoint import StagedOutput
from selfimprove.trainers.data import dataset_info, is_empty
from selfimprove.trainers.manifest import (
    MANIFEST_NAME,
    Method,
    Stage,
    StageResult,
    TrainResult,
    library_versions,
)
from selfimprove.trainers.settings import describe_device


def model_folder(base: str | Path) -> Path:
    """The absolute folder of a Hugging Face model to train from.

    Raises:
        ValueError: ``base`` is not a folder with a ``config.json``.
    """
    folder = Path(base).absolute()
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"base model {str(base)!r} is not a Hugging Face model folder (no config.json); "
            "pass a local folder, e.g. resolve_model_path('smollm2-135m-instruct')"
        )
    return folder


def require_rows(dataset: Dataset | None, stage: Stage) -> Dataset:
    """``dataset`` itself, refused when it has no rows.

    Raises:
        ValueError: the dataset is None or empty.
    """
    if dataset is None or is_empty(dataset):
        kind = "verified answers (prompt/completion)" if stage == "sft" else "preference pairs"
        raise ValueError(
            f"the {stage.upper()} dataset is empty ({dataset!r}); it needs at least one row of "
            f"{kind}: collect more before training, or choose another training.method"
        )
    return dataset


def stage_result(
    name: Stage,
    base: Path,
    dataset: Dataset,
    trainer: Any,
    log: StepLog,
    *,
    learning_rate: float,
    beta: float | None = None,
) -> StageResult:
    """What one finished stage records in the manifest."""
    return StageResult(
        name=name,
        start_model=str(base),
        dataset=dataset_info(dataset),
        steps=trainer.state.global_step,
        seconds=round(log.seconds, 3),
        learning_rate=learning_rate,
        beta=beta,
        losses=log.losses,
        history=log.history,
    )


def build_result(
    *,
    method: Method,
    base: Path,
    out_dir: Path,
    stages: list[StageResult],
    datasets: dict[str, Dataset | None],
    config: TrainingConfig,
    started: float,
    processes: int,
    skipped: dict[str, str] | None = None,
) -> TrainResult:
    """The ``TrainResult`` (and manifest) of a model folder about to be published.

    Args:
        started: ``time.time()`` when the call began, for the wall time.
    """
    return TrainResult(
        model_path=out_dir,
        manifest_path=out_dir / MANIFEST_NAME,
        method=method,
        base_model=str(base),
        seed=config.seed,
        stages=stages,
        skipped=skipped or {},
        datasets={name: dataset_info(data) for name, data in datasets.items()},
        config=config.model_dump(mode="json"),
        seconds=round(time.time() - started, 3),
        processes=processes,
        versions=library_versions(),
        created_unix=round(time.time(), 3),
        **describe_device(config),
    )


def publish(trainer: Any, staged: StagedOutput, result: TrainResult) -> TrainResult:
    """Move the staged model into place (main process) and wait for the other processes."""
    if trainer.accelerator.is_main_process:
        staged.publish(result)
    # Under `accelerate launch` the next stage reads this folder on every process.
    trainer.accelerator.wait_for_everyone()
    return result
