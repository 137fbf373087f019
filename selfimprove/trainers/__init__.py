"""Training the student: thin TRL wrappers and one round contract (model folder in, model folder out).

    from selfimprove.trainers import train_round, load_manifest
    result = train_round(base_dir, sft_rows, dpo_rows, config.training, Path("runs/r1/model"))
    result.model_path          # a plain Hugging Face folder: LoRA merged, tokenizer, manifest.json
    load_manifest(result.model_path).stages[0].losses

- ``train_sft`` / ``train_dpo``: one stage over TRL's ``SFTTrainer`` / ``DPOTrainer``
  (LoRA by default, CPU or GPU settings chosen automatically, rich progress bar).
- ``train_round``: SFT, DPO or SFT then DPO per ``TrainingConfig.method``.
- Output folders are written atomically and carry ``manifest.json``
  (``TrainResult``): base, method, seed, dataset counts and hashes, config,
  per-step losses, wall time, device, library versions.

From a shell, or on several GPUs through ``accelerate launch`` (see
``docs/accelerate/README.md``):

    python -m selfimprove.trainers --base DIR --sft data.jsonl --dpo pairs.jsonl --out DIR

Names are imported on first use, so reading a manifest (or ``--help``) does not
pay for importing TRL, peft and torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfimprove.trainers.data import dataset_info, read_jsonl
    from selfimprove.trainers.dpo import train_dpo
    from selfimprove.trainers.manifest import (
        MANIFEST_NAME,
        DatasetInfo,
        StageResult,
        TrainResult,
        load_manifest,
    )
    from selfimprove.trainers.round import train_round
    from selfimprove.trainers.sft import train_sft

_HOMES = {
    "MANIFEST_NAME": "manifest",
    "DatasetInfo": "manifest",
    "StageResult": "manifest",
    "TrainResult": "manifest",
    "load_manifest": "manifest",
    "dataset_info": "data",
    "read_jsonl": "data",
    "train_dpo": "dpo",
    "train_round": "round",
    "train_sft": "sft",
}

__all__ = [
    "DatasetInfo",
    "MANIFEST_NAME",
    "StageResult",
    "TrainResult",
    "dataset_info",
    "load_manifest",
    "read_jsonl",
    "train_dpo",
    "train_round",
    "train_sft",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'selfimprove.trainers' has no attribute {name!r}")
    return getattr(importlib.import_module(f"selfimprove.trainers.{home}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
