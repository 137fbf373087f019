"""Saving a trained model so that a crash never leaves a half-written folder.

A stage works in a hidden temporary folder beside its destination
(``.<name>.tmp-XXXX/``, holding ``scratch/`` for the trainer and ``model/`` for
the result). Only when the merged model, tokenizer and manifest are all written
is ``model/`` renamed to the destination, in one ``os.rename``; the temporary
folder is removed whether training succeeded or raised.

    with StagedOutput(out_dir) as staged:
        ...train with output_dir=staged.scratch...
        save_merged(trainer, base, staged.model, lora=True)
        staged.publish(result)          # writes manifest.json, then renames
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from selfimprove.trainers.manifest import TrainResult, write_manifest


def check_destination(out_dir: str | Path, *, overwrite: bool) -> Path:
    """The absolute destination folder, refused early when it already holds files.

    Raises:
        FileExistsError: ``out_dir`` is a non-empty folder (or a file) and
            ``overwrite`` is False.
    """
    out_dir = Path(out_dir).absolute()
    occupied = out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))
    if occupied and not overwrite:
        raise FileExistsError(
            f"output folder {str(out_dir)!r} already exists and is not empty; choose another "
            "out_dir, delete it, or pass overwrite=True"
        )
    return out_dir


class StagedOutput:
    """A temporary work folder beside ``out_dir`` that becomes ``out_dir`` on ``publish``.

    Attributes:
        out_dir: The final folder.
        scratch: For the trainer's own files (discarded).
        model: Where the model, tokenizer and manifest are written before the rename.
    """

    def __init__(self, out_dir: str | Path, *, overwrite: bool = False) -> None:
        self.out_dir = check_destination(out_dir, overwrite=overwrite)
        self.overwrite = overwrite
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._work = Path(
            tempfile.mkdtemp(prefix=f".{self.out_dir.name}.tmp-", dir=self.out_dir.parent)
        )
        self.scratch = self._work / "scratch"
        self.model = self._work / "model"

    def __enter__(self) -> StagedOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self._work, ignore_errors=True)

    def publish(self, result: TrainResult) -> Path:
        """Write the manifest into the staged model, then move it to ``out_dir`` atomically."""
        check_destination(self.out_dir, overwrite=self.overwrite)  # nobody took it meanwhile
        write_manifest(result, self.model)
        if self.out_dir.exists():
            # An empty folder (or, with overwrite, an old model) stands in the way of rename.
            old = self._work / "replaced"
            self.out_dir.rename(old)
        self.model.rename(self.out_dir)
        return self.out_dir


def save_merged(trainer: Any, base: Path, dest: Path, *, lora: bool) -> None:
    """Save the trained weights as one plain model folder (LoRA merged in) plus tokenizer.

    ``trainer.save_model`` runs on every process so that FSDP and DeepSpeed can
    gather their shards; the main process then merges and writes ``dest``. That
    one path serves a laptop CPU and ``accelerate launch`` alike.
    """
    trained = dest.parent / "trained"
    trainer.save_model(str(trained))
    if not trainer.accelerator.is_main_process:
        return
    if lora:
        # The adapter goes onto a fresh float32 copy of the base on the CPU: one code
        # path whatever the device and sharding were during training.
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, trained).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(trained, dtype=torch.float32)
    model.save_pretrained(dest)
    trainer.processing_class.save_pretrained(dest)
