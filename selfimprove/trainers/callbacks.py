"""Watching a training stage: a rich progress bar over steps and the per-step log.

One SmolLM2 step takes seconds on a CPU, so the user sees a bar with the latest
loss instead of TRL's tqdm bar (turned off in ``settings.trainer_args``) and the
``datasets`` and transformers bars of every preprocessing pass and model load
(muted by ``quiet_libraries``).

    with StepLog("sft", total=config.max_steps, progress=True) as log:
        trainer = SFTTrainer(..., callbacks=[log])
        trainer.train()
    log.losses   # one float per optimizer step
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import datasets
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback
from transformers.utils import logging as hf_logging

from selfimprove.events import emit

logger = logging.getLogger(__name__)


class StepLog(TrainerCallback):
    """Records every logged step (``logging_steps=1``) and advances a progress bar.

    A context manager, so the bar stops even when training raises. Only the main
    process of a distributed run draws the bar; every process records its log.

    Attributes:
        history: One dict per step: ``step``, ``loss`` and the other numbers the
            trainer logged (``grad_norm``, ``learning_rate``, DPO's rewards).
        seconds: Wall time of ``trainer.train()``, from its start to its end.
    """

    def __init__(self, stage: str, total: int, *, progress: bool = True) -> None:
        self.stage = stage
        self.total = total
        self.history: list[dict[str, float]] = []
        self._bar: Progress | None = _make_bar() if progress else None
        self._task: TaskID | None = None
        self._started = 0.0
        self.seconds = 0.0

    @property
    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.history]

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None and self._bar is not None:
            self._bar.stop()
        self._task = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.monotonic()
        if self._bar is not None and state.is_world_process_zero and self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(
                self.stage, total=state.max_steps or self.total, loss=""
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._task is not None and self._bar is not None:
            self._bar.update(self._task, completed=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds = time.monotonic() - self._started

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not logs or "loss" not in logs:
            return  # the end-of-training summary (train_runtime, train_loss) is not a step
        entry = {"step": float(state.global_step)}
        entry.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
        self.history.append(entry)
        loss = entry["loss"]
        emit(
            "training_step",
            stage=self.stage,
            step=state.global_step,
            total=state.max_steps,
            loss=loss,
        )
        logger.info("%s step %d/%d loss %.4f", self.stage, state.global_step, state.max_steps, loss)
        if not math.isfinite(loss):
            logger.warning("%s step %d: the loss is %r", self.stage, state.global_step, loss)
        if self._task is not None and self._bar is not None:
            self._bar.update(self._task, loss=f"loss {loss:.4f}")


def _make_bar() -> Progress:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), transient=False)


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Mute the libraries' own progress bars and one warning we cannot act on; restore after.

    TRL's preprocessing draws a ``datasets`` bar per pass and transformers one per
    model load or save; the bar that matters is ``StepLog``'s.
    """
    datasets_bars = datasets.is_progress_bar_enabled()
    transformers_bars = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # Raised inside TRL when it asks the model the pre-5.x name; nothing to fix on our side.
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
            )
            yield
    finally:
        if datasets_bars:
            datasets.enable_progress_bars()
        if transformers_bars:
            hf_logging.enable_progress_bar()
