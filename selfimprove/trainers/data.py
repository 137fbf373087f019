"""Datasets in, rows TRL can train on out; plus the content hash the manifest records.

The exporters in ``selfimprove.memory.export`` produce these shapes, all accepted:

- SFT: ``prompt``/``completion`` (plain text or chat turns), or ``messages``
  (the last turn must be the assistant's: it becomes the completion, so the loss
  stays on the answer);
- DPO: ``prompt``/``chosen``/``rejected`` (plain text or chat turns).

Plain-text rows are wrapped as user/assistant turns when the tokenizer has a chat
template (``TrainingConfig.chat_template``), because the student generates from
chat-templated prompts: training on raw text would teach a format it never sees.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from datasets import Dataset

from selfimprove.trainers.manifest import DatasetInfo


def dataset_info(dataset: Dataset | None) -> DatasetInfo:
    """Rows, columns and a SHA-256 over the rows as given (order matters; None is empty)."""
    digest = hashlib.sha256()
    if dataset is None:
        return DatasetInfo(rows=0, columns=[], sha256=digest.hexdigest())
    for row in dataset:
        line = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        digest.update(line.encode("utf-8") + b"\n")
    return DatasetInfo(
        rows=len(dataset), columns=sorted(dataset.column_names), sha256=digest.hexdigest()
    )


def is_empty(dataset: Dataset | None) -> bool:
    return dataset is None or len(dataset) == 0


def sft_rows(dataset: Dataset, tokenizer: Any, *, chat: bool) -> Dataset:
    """``prompt``/``completion`` rows for ``SFTTrainer`` (loss on the completion only).

    Raises:
        ValueError: the columns fit no SFT format, or a ``messages`` row does not
            end with an assistant turn.
    """
    columns = set(dataset.column_names)
    if "messages" in columns:
        return dataset.map(_split_last_turn, remove_columns=dataset.column_names)
    if {"prompt", "completion"} <= columns:
        rows = dataset.select_columns(["prompt", "completion"])
        return _as_chat(rows, ["completion"]) if _wrap(rows, tokenizer, chat) else rows
    raise ValueError(
        f"an SFT dataset needs 'prompt' and 'completion' columns or a 'messages' column, "
        f"got {sorted(columns)!r}; build it with selfimprove.memory.export.sft_dataset"
    )


def dpo_rows(dataset: Dataset, tokenizer: Any, *, chat: bool) -> Dataset:
    """``prompt``/``chosen``/``rejected`` rows for ``DPOTrainer``.

    Raises:
        ValueError: a column is missing.
    """
    needed = ["prompt", "chosen", "rejected"]
    missing = [name for name in needed if name not in dataset.column_names]
    if missing:
        raise ValueError(
            f"a DPO dataset needs columns {needed!r}, missing {missing!r} in "
            f"{sorted(dataset.column_names)!r}; build it with selfimprove.memory.export.dpo_dataset"
        )
    rows = dataset.select_columns(needed)
    return _as_chat(rows, ["chosen", "rejected"]) if _wrap(rows, tokenizer, chat) else rows


def read_jsonl(path: str | Path) -> Dataset:
    """A dataset from a JSON Lines file (one JSON object per line; blank lines skipped).

    Raises:
        ValueError: the file is missing, or a line is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"dataset file {str(path)!r} does not exist")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(path)!r} line {number} is not JSON: {exc}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{str(path)!r} line {number} is not a JSON object: {row!r:.80}")
            rows.append(row)
    return Dataset.from_list(rows)


def _wrap(rows: Dataset, tokenizer: Any, chat: bool) -> bool:
    """Whether plain-text rows should become chat turns."""
    return (
        chat
        and bool(tokenizer.chat_template)
        and len(rows) > 0
        and isinstance(rows[0]["prompt"], str)
    )


def _as_chat(rows: Dataset, answers: list[str]) -> Dataset:
    def wrap(row: dict[str, Any]) -> dict[str, Any]:
        out = {"prompt": [{"role": "user", "content": row["prompt"]}]}
        for name in answers:
            out[name] = [{"role": "assistant", "content": row[name]}]
        return out

    return rows.map(wrap)


def _split_last_turn(row: dict[str, Any]) -> dict[str, Any]:
    messages = row["messages"]
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError(
            f"an SFT 'messages' row must end with an assistant turn, got {messages!r:.200}; "
            "drop rows without an answer before training"
        )
    return {"prompt": messages[:-1], "completion": messages[-1:]}
