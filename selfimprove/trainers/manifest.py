"""What a trained model folder says about itself: ``TrainResult``, saved as ``manifest.json``.

Every folder the trainers write holds the merged model, its tokenizer and
``manifest.json``: the base model, method, seed, each dataset's row count and
content hash, the training config, each stage's per-step losses, wall time,
device and precision, and the library versions. Read one back with

    result = load_manifest("runs/r1/model")         # or the manifest.json path
    result.stages[0].losses[-1], result.datasets["sft"].sha256

This module needs only pydantic, so reading a manifest does not import TRL.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfimprove.files import write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "selfimprove")

Stage = Literal["sft", "dpo"]
Method = Literal["sft", "dpo", "sft_dpo"]


class DatasetInfo(BaseModel):
    """What the manifest records of a dataset: size, columns and a content hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int
    columns: list[str]
    sha256: str = Field(description="SHA-256 over the rows as JSON lines, in order.")


class StageResult(BaseModel):
    """One training stage: what it started from, what it read, how the loss went."""

    model_config = ConfigDict(extra="forbid")

    name: Stage
    start_model: str = Field(description="The folder this stage trained from.")
    dataset: DatasetInfo
    steps: int
    seconds: float
    learning_rate: float
    beta: float | None = Field(default=None, description="DPO's beta; None for SFT.")
    losses: list[float] = Field(description="Train loss at every optimizer step.")
    history: list[dict[str, float]] = Field(
        default_factory=list, description="Everything logged per step (grad_norm, rewards, ...)."
    )

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else 0.0


class TrainResult(BaseModel):
    """A trained model folder and how it was made; ``manifest.json`` holds it as JSON."""

    model_config = ConfigDict(extra="forbid")

    format: int = MANIFEST_FORMAT
    model_path: Path
    manifest_path: Path
    method: Method
    base_model: str
    seed: int
    stages: list[StageResult]
    skipped: dict[str, str] = Field(
        default_factory=dict, description="Stage name -> why it did not run."
    )
    datasets: dict[str, DatasetInfo]
    config: dict[str, Any] = Field(description="The TrainingConfig, as a plain mapping.")
    seconds: float = Field(description="Wall time of the whole call, loading and saving included.")
    device: str
    precision: str
    weights_dtype: str
    processes: int = 1
    versions: dict[str, str]
    created_unix: float

    @property
    def losses(self) -> list[float]:
        """Every stage's per-step losses, in order."""
        return [loss for stage in self.stages for loss in stage.losses]


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide what training does."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(result: TrainResult, folder: Path) -> Path:
    """Write ``result`` as ``folder/manifest.json`` in one atomic replace."""
    return write_text_atomic(Path(folder) / MANIFEST_NAME, result.model_dump_json(indent=2) + "\n")


def load_manifest(path: str | Path) -> TrainResult:
    """Read a manifest; ``path`` is ``manifest.json`` or the model folder holding it.

    ``model_path`` and ``manifest_path`` are set to where the files are now, so a
    folder that was moved or copied reads correctly.

    Raises:
        ValueError: the file is missing or is not a valid manifest.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"no training manifest at {str(path)!r}; pass a model folder written by "
            "selfimprove.trainers (it holds manifest.json)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read training manifest {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"training manifest {str(path)!r} is not a JSON object")
    data.update(model_path=str(path.parent.absolute()), manifest_path=str(path.absolute()))
    try:
        return TrainResult.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"training manifest {str(path)!r} is invalid: {exc}") from None
