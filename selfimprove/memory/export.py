"""Export stored examples as Hugging Face ``datasets.Dataset`` s in the formats TRL trainers read.

- ``sft_dataset(examples)``: columns ``prompt``/``completion`` (TRL's
  prompt-completion format; loss on the completion), or with
  ``conversational=True`` one ``messages`` column of user/assistant turns. An
  example whose ``metadata["messages"]`` holds a JSON chat (a self-debug fix with
  its feedback in context) is trained on those turns, so a set holding one is
  exported as ``messages``.
- ``dpo_dataset(examples)``: columns ``prompt``/``chosen``/``rejected`` from
  ``kind="pair"`` examples (``completion`` is the chosen answer), optionally as
  conversational turns.

Every example is checked first; one that cannot serve the format raises a
``ValueError`` naming its id, so a bad row never reaches a trainer silently:

    positives = store.find({"kind": "positive", "round": 2})
    train = sft_dataset(positives)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from selfimprove.types import Example

_SFT_KINDS = ("positive", "workflow")


def _sft_problem(example: Example) -> str | None:
    if example.kind == "pair":
        return "is a DPO pair: export it with dpo_dataset"
    if example.kind == "negative" or example.passed is False:
        return f"is not a positive example (kind={example.kind!r}, passed={example.passed!r})"
    if example.kind not in _SFT_KINDS and example.passed is not True:
        return (
            f"is an unverified {example.kind!r} (passed={example.passed!r}): "
            "SFT takes positives, workflows and attempts with passed=True"
        )
    if not example.prompt.strip():
        return "has an empty prompt"
    if not example.completion.strip():
        return "has an empty completion"
    return None


def _dpo_problem(example: Example) -> str | None:
    if example.kind != "pair":
        return f"has kind {example.kind!r}, not 'pair': DPO needs chosen and rejected answers"
    if not example.prompt.strip():
        return "has an empty prompt"
    if not example.completion.strip():
        return "has an empty chosen answer (completion)"
    if example.rejected is None or not example.rejected.strip():
        return f"has no rejected answer (rejected={example.rejected!r})"
    if example.completion == example.rejected:
        return "has the same chosen and rejected answer: it teaches no preference"
    return None


def _checked(examples: Iterable[Example], problem: Any, fmt: str) -> list[Example]:
    rows = list(examples)
    for example in rows:
        reason = problem(example)
        if reason is not None:
            raise ValueError(
                f"example {example.id!r} {reason}; filter the examples before exporting "
                f"to {fmt} (e.g. store.find({{'kind': ...}}))"
            )
    return rows


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _conversation(example: Example) -> list[dict[str, str]]:
    """The example's turns: ``metadata["messages"]`` (a JSON chat) when set, else its prompt."""
    raw = example.metadata.get("messages")
    turns = json.loads(raw) if isinstance(raw, str) and raw else _user(example.prompt)
    return turns + _assistant(example.completion)


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _features(columns: dict[str, bool], with_ids: bool) -> Any:
    from datasets import Features, List, Value

    turn = {"role": Value("string"), "content": Value("string")}
    spec = {name: List(turn) if turns else Value("string") for name, turns in columns.items()}
    if with_ids:
        spec["example_id"] = Value("string")
    return Features(spec)


def _dataset(rows: dict[str, list[Any]], columns: dict[str, bool], with_ids: bool) -> Any:
    from datasets import Dataset  # imported here: pyarrow is heavy and only export needs it

    return Dataset.from_dict(rows, features=_features(columns, with_ids))


def sft_dataset(
    examples: Iterable[Example], *, conversational: bool = False, with_ids: bool = False
) -> Any:
    """An SFT dataset: ``prompt``/``completion``, or ``messages`` when ``conversational``.

    Args:
        examples: Positive examples (``kind`` positive or workflow, or an
            attempt with ``passed=True``).
        conversational: One ``messages`` column of ``[user, assistant]`` turns.
        with_ids: Add an ``example_id`` column for lineage (drop it before
            training if your trainer keeps unknown columns).

    Raises:
        ValueError: An example is not positive or lacks a prompt or completion;
            the message names its id.
    """
    rows = _checked(examples, _sft_problem, "SFT")
    if conversational or any(e.metadata.get("messages") for e in rows):
        data: dict[str, list[Any]] = {"messages": [_conversation(e) for e in rows]}
        columns = {"messages": True}
    else:
        data = {"prompt": [e.prompt for e in rows], "completion": [e.completion for e in rows]}
        columns = {"prompt": False, "completion": False}
    if with_ids:
        data["example_id"] = [e.id for e in rows]
    return _dataset(data, columns, with_ids)


def dpo_dataset(
    examples: Iterable[Example], *, conversational: bool = False, with_ids: bool = False
) -> Any:
    """A DPO dataset: ``prompt``/``chosen``/``rejected`` from ``kind="pair"`` examples.

    Args:
        examples: Pair examples (``completion`` chosen, ``rejected`` rejected).
        conversational: Prompt as a user turn, answers as assistant turns.
        with_ids: Add an ``example_id`` column for lineage.

    Raises:
        ValueError: An example is not a pair or lacks a prompt, a chosen or a
            rejected answer; the message names its id.
    """
    rows = _checked(examples, _dpo_problem, "DPO")
    wrap_prompt = _user if conversational else str
    wrap_answer = _assistant if conversational else str
    data: dict[str, list[Any]] = {
        "prompt": [wrap_prompt(e.prompt) for e in rows],
        "chosen": [wrap_answer(e.completion) for e in rows],
        "rejected": [wrap_answer(e.rejected or "") for e in rows],
    }
    if with_ids:
        data["example_id"] = [e.id for e in rows]
    columns = {"prompt": conversational, "chosen": conversational, "rejected": conversational}
    return _dataset(data, columns, with_ids)
