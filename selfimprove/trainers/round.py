"""One round's training: model folder in, trained model folder (with manifest) out.

``train_round`` runs the stages ``TrainingConfig.method`` asks for:

- ``sft``: SFT on the verified answers;
- ``dpo``: DPO on the (correct, wrong) pairs;
- ``sft_dpo``: SFT, then DPO starting from the merged SFT model (the SFT model
  is also the DPO reference). A stage whose dataset is empty is skipped, with
  the reason logged and recorded in the manifest; with nothing to train, it
  raises.

    from selfimprove.trainers import train_round
    result = train_round(base, sft_dataset(pos), dpo_dataset(pairs), config.training,
                         Path("runs/demo/round-1/model"))
    result.model_path / "manifest.json"

The SFT model of an ``sft_dpo`` round lives in a hidden folder beside
``out_dir`` (``.<name>.sft``) until DPO has finished, then is deleted; its losses
stay in the manifest.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset
from transformers import TrainerCallback

from selfimprove.config import TrainingConfig
from selfimprove.trainers.checkpoint import check_destination
from selfimprove.trainers.data import dataset_info, is_empty
from selfimprove.trainers.dpo import train_dpo
from selfimprove.trainers.manifest import Stage, TrainResult, write_manifest
from selfimprove.trainers.sft import train_sft
from selfimprove.trainers.stage import model_folder, require_rows

logger = logging.getLogger(__name__)

_STAGES: dict[str, tuple[Stage, ...]] = {
    "sft": ("sft",),
    "dpo": ("dpo",),
    "sft_dpo": ("sft", "dpo"),
}


def plan_stages(
    method: str, sft_data: Dataset | None, dpo_data: Dataset | None
) -> tuple[list[Stage], dict[str, str]]:
    """The stages to run for ``method`` and, for each skipped one, why.

    Raises:
        ValueError: every stage of ``method`` has an empty dataset.
    """
    data = {"sft": sft_data, "dpo": dpo_data}
    run: list[Stage] = []
    skipped: dict[str, str] = {}
    for stage in _STAGES[method]:
        if is_empty(data[stage]):
            skipped[stage] = f"the {stage.upper()} dataset is empty"
        else:
            run.append(stage)
    if not run:
        rows = {name: dataset_info(d).rows for name, d in data.items()}
        raise ValueError(
            f"nothing to train: training.method {method!r} needs "
            f"{' and/or '.join(s.upper() for s in _STAGES[method])} rows, and the datasets have "
            f"{rows!r} rows; collect verified answers (SFT) or preference pairs (DPO) first, "
            "or choose a method whose data you have"
        )
    for stage, reason in skipped.items():
        logger.warning("skipping the %s stage: %s", stage.upper(), reason)
    return run, skipped


def train_round(
    base: str | Path,
    sft_data: Dataset | None,
    dpo_data: Dataset | None,
    config: TrainingConfig,
    out_dir: Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train one round per ``config.method`` and save the merged model to ``out_dir``.

    Args:
        base: The current student's Hugging Face folder.
        sft_data: Verified answers (``prompt``/``completion``), or None.
        dpo_data: Preference pairs (``prompt``/``chosen``/``rejected``), or None.
        config: The round's training settings.
        out_dir: The new model folder; it must not exist yet (or be empty).
        progress: Draw progress bars over the steps.
        overwrite: Replace an existing ``out_dir`` once training has succeeded.
        callbacks: Extra ``transformers.TrainerCallback`` s, given to every stage.

    Returns:
        The result: all stages' losses, both datasets' counts and hashes; also
        written to ``out_dir/manifest.json``.

    Raises:
        ValueError: ``base`` is not a model folder, or there is nothing to train.
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    started = time.time()
    base = model_folder(base)
    out_dir = check_destination(out_dir, overwrite=overwrite)  # before hours of SFT, not after
    stages, skipped = plan_stages(config.method, sft_data, dpo_data)
    if stages == ["sft", "dpo"]:
        result = _sft_then_dpo(
            base,
            require_rows(sft_data, "sft"),
            require_rows(dpo_data, "dpo"),
            config,
            out_dir,
            progress=progress,
            overwrite=overwrite,
            callbacks=callbacks,
        )
    else:
        train = train_sft if stages == ["sft"] else train_dpo
        data = require_rows(sft_data if stages == ["sft"] else dpo_data, stages[0])
        result = train(
            base, data, config, out_dir, progress=progress, overwrite=overwrite, callbacks=callbacks
        )
    result = result.model_copy(
        update={
            "method": config.method,
            "base_model": str(base),
            "skipped": skipped,
            "datasets": {"sft": dataset_info(sft_data), "dpo": dataset_info(dpo_data)},
            "seconds": round(time.time() - started, 3),
        }
    )
    if PartialState().is_main_process:
        write_manifest(result, out_dir)
    return result


def _sft_then_dpo(
    base: Path,
    sft_data: Dataset,
    dpo_data: Dataset,
    config: TrainingConfig,
    out_dir: Path,
    *,
    progress: bool,
    overwrite: bool,
    callbacks: Sequence[TrainerCallback],
) -> TrainResult:
    """SFT into a hidden folder beside ``out_dir``, then DPO from it into ``out_dir``."""
    # A fixed name, so every process of a distributed run finds the same folder.
    middle = out_dir.parent / f".{out_dir.name}.sft"
    try:
        sft = train_sft(
            base, sft_data, config, middle, progress=progress, overwrite=True, callbacks=callbacks
        )
        dpo = train_dpo(
            middle,
            dpo_data,
            config,
            out_dir,
            progress=progress,
            overwrite=overwrite,
            callbacks=callbacks,
        )
    finally:
        # train_dpo ends on a barrier, so no process still reads `middle`.
        if PartialState().is_main_process:
            shutil.rmtree(middle, ignore_errors=True)
    return dpo.model_copy(update={"stages": sft.stages + dpo.stages})
