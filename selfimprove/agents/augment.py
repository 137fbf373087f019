"""Failure-driven augmentation (LLM2LLM, S3): new training tasks near the ones the student failed.

Self mode (no teacher) makes programmatic variants of built-in tasks (same suite,
level and template, new constants: ``tasks.variants``). Teacher mode asks a
teacher model, in one batched ``generate`` call, for a new task near each failed
one as a JSON object (the request is ``agents/prompts/augment.txt``).

Every new task is checked before use: its reference solution (``reference`` of a
code task, ``answer`` of an answer task) must pass its own check with the grader;
it must not leak a held-out or guard task (same split key, or a copy of the
prompt: ``memory.decontaminate.find_task_leaks``); duplicates of ``known`` split keys
or prompts, of the failed tasks and of each other are dropped.

    from selfimprove.agents.augment import augment_failures
    result = augment_failures(failed, grader, per_task=2, seed=round, heldout=heldout + guard,
                              known=[split_key(t) for t in train])
    result.tasks      # verified new train tasks, ids "aug-<hash>"
    result.rejected   # {"unsolvable": 1, "duplicate": 2, ...}

For an answer task the check only proves the answer is gradable (a teacher's
wrong answer to its own question passes); code references are really run.
Odd teacher output (prose, broken JSON, missing keys) counts as ``parse_error``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Collection, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfimprove.agents.prompt_file import PromptFile
from selfimprove.memory.decontaminate import find_task_leaks
from selfimprove.models.base import ChatModel
from selfimprove.tasks.extract import extract_code, parse_number, storable
from selfimprove.tasks.suite import split_key
from selfimprove.tasks.variants import can_vary, variants
from selfimprove.tasks.verifiers import Grader, answer_match
from selfimprove.types import Task, content_id

PROMPT_PATH = Path(__file__).parent / "prompts" / "augment.txt"
TEACHER_MAX_TOKENS = 768
TEACHER_TEMPERATURE = 0.7  # several tasks per failure must differ
_JSON_BLOCK = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)
_TEST = re.compile(r"^\s*(?:assert\b|def\s+check\s*\()", re.MULTILINE)  # tests that test
_MAX_OBJECT_STARTS = 50  # where to try decoding a JSON object in a long reply
PARSE_CHARS = 50_000  # a reply is searched this far (a task is a few thousand characters)
_CODE_KEYS = ("prompt", "entry_point", "tests", "reference")


class AugmentResult(BaseModel):
    """What augmentation made of a batch of failed tasks.

    Attributes:
        tasks: verified new train tasks, in the order of the failed tasks.
        proposed: candidate tasks proposed (variants made, or teacher replies).
        rejected: why candidates were dropped, by reason: ``unsolvable`` (the
            reference fails its own check), ``duplicate``, ``contaminated`` (leaks a
            held-out or guard task), ``parse_error`` (unusable teacher reply), and
            ``unsupported``: failed tasks with no variant maker and no teacher.
            ``len(tasks)`` plus all reasons but ``unsupported`` is ``proposed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: list[Task] = Field(default_factory=list)
    proposed: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)


class AugmentPrompt(PromptFile):
    """The teacher request: ``[format code]`` / ``[format answer]`` fill ``{format}``."""

    default_path = PROMPT_PATH
    default_part = "format"

    def render(self, task: Task | None, /, **values: str) -> list[dict[str, str]]:
        """The chat messages asking for one new task near ``task`` (shown as JSON)."""
        if task is not None:
            values = {"task": json.dumps(task_json(task), indent=2), **values}
        return super().render(task, **values)


def augment_failures(
    failed: Sequence[Task],
    grader: Grader,
    *,
    per_task: int = 2,
    seed: int = 0,
    teacher: ChatModel | None = None,
    heldout: Sequence[Task] = (),
    known: Collection[str] = (),
    prompt: AugmentPrompt | None = None,
) -> AugmentResult:
    """Up to ``per_task`` verified new train tasks near each failed task.

    Args:
        failed: tasks the student failed.
        grader: runs each new task's reference against its own check (one batch).
        per_task: candidates per failed task.
        seed: variant draws use ``random.Random(f"{seed}:{task.id}")`` per task; the
            teacher call gets ``seed``.
        teacher: ask this model for new tasks instead of making variants.
        heldout: held-out and guard tasks that no new task may leak.
        known: split keys or prompts of tasks already in use (dropped as duplicates).
        prompt: the teacher request (default: ``prompts/augment.txt``).

    Raises:
        ValueError: a failed task is held-out (mining evaluation failures is peeking).
    """
    peeked = [t.id for t in failed if t.split == "heldout"]
    if peeked:
        raise ValueError(
            f"held-out tasks {peeked[:5]!r} cannot seed augmentation: pass train failures only"
        )
    rejected: Counter[str] = Counter()
    if teacher is None:
        candidates = []
        for task in failed:
            if can_vary(task):
                rng = random.Random(f"{seed}:{task.id}")
                candidates += variants(task, per_task, rng, exclude=known)
            else:
                rejected["unsupported"] += 1
    else:
        candidates = _ask_teacher(failed, teacher, per_task, seed, prompt or AugmentPrompt.load())
        rejected["parse_error"] = sum(c is None for c in candidates)
    proposed = len(candidates)
    seen = {_norm(k) for k in known} | {_norm(k) for t in failed for k in _keys(t)}
    fresh: list[Task] = []
    for task in filter(None, candidates):
        keys = {_norm(k) for k in _keys(task)}
        if keys & seen:
            rejected["duplicate"] += 1
            continue
        seen |= keys
        fresh.append(task)
    leaked = dict(find_task_leaks(fresh, heldout))
    rejected["contaminated"] = len(leaked)
    clean = [t for t in fresh if t.id not in leaked]
    verdicts = grader.grade(clean, [_solution(t) for t in clean]) if clean else []
    kept = [t for t, v in zip(clean, verdicts, strict=True) if v.passed]
    rejected["unsolvable"] = len(clean) - len(kept)
    return AugmentResult(
        tasks=kept, proposed=proposed, rejected={r: n for r, n in sorted(rejected.items()) if n}
    )


def task_json(task: Task) -> dict[str, Any]:
    """A task in the JSON form the teacher is asked to write."""
    if task.kind == "code":
        return {key: getattr(task, key) or "" for key in _CODE_KEYS}
    shown: dict[str, Any] = {"prompt": task.prompt, "answer": task.answer or ""}
    if task.metadata.get("choices"):
        shown["choices"] = [str(c) for c in task.metadata["choices"]]
    return shown


def parse_task(text: str, failed: Task, teacher: str = "teacher") -> Task | None:
    """The new task a teacher reply describes (same kind as ``failed``), or None if unusable."""
    data = _json_object(text)
    if data is None:
        return None
    meta: dict[str, Any] = {"augmented_from": failed.id, "origin": "teacher", "teacher": teacher}
    fields: dict[str, Any] = {"prompt": data.get("prompt")}
    if failed.kind == "code":
        values = {key: data.get(key) for key in _CODE_KEYS}
        if not all(isinstance(v, str) and v.strip() for v in values.values()):
            return None
        if not values["entry_point"].strip().isidentifier() or not _TEST.search(values["tests"]):
            return None
        fields |= {
            "entry_point": values["entry_point"].strip(),
            "tests": values["tests"],
            "reference": extract_code(values["reference"]),
        }
    else:
        answer = data.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            return None
        fields["answer"] = str(answer).strip()
        if not fields["answer"]:
            return None
        meta |= _answer_metadata(failed, fields["answer"], data.get("choices"))
    if not isinstance(fields["prompt"], str) or not fields["prompt"].strip():
        return None
    digest = content_id(failed.suite, failed.kind, fields)[:16]
    try:
        return Task(
            id=f"aug-{digest}",
            kind=failed.kind,
            suite=failed.suite,
            split="train",
            difficulty=failed.difficulty,
            metadata=meta,
            **fields,
        )
    except ValidationError:
        return None


def _ask_teacher(
    failed: Sequence[Task], teacher: ChatModel, n: int, seed: int, prompt: AugmentPrompt
) -> list[Task | None]:
    if not failed or n < 1:
        return []
    rows = teacher.generate(
        [prompt.render(t) for t in failed],
        n=n,
        temperature=TEACHER_TEMPERATURE,
        max_tokens=TEACHER_MAX_TOKENS,
        seed=seed,
    )
    name = str(getattr(teacher, "name", "teacher"))
    out: list[Task | None] = []
    for i, task in enumerate(failed):
        replies = [c.text for c in rows[i]][:n] if i < len(rows) else []
        out += [parse_task(text, task, name) for text in replies + [""] * (n - len(replies))]
    return out


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (fenced blocks first); None if there is none."""
    decoder = json.JSONDecoder()
    text = text[:PARSE_CHARS]  # a server ignoring max_tokens must not cost seconds per reply
    for chunk in [*_JSON_BLOCK.findall(text), text]:
        starts = islice(re.finditer(r"\{", chunk), _MAX_OBJECT_STARTS)
        for start in (m.start() for m in starts):
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except (ValueError, RecursionError):
                continue
            if isinstance(value, dict) and storable(value):
                return value
    return None


def _answer_metadata(failed: Task, answer: str, choices: Any) -> dict[str, Any]:
    """How to grade a teacher's answer task: the way the failed task is graded, where it fits."""
    match = answer_match(failed)
    if match == "choice":
        if isinstance(choices, list) and len(choices) >= 2:
            shown = [str(c) for c in choices]
            return {"match": "choice", "choices": shown}  # answer not among them: unsolvable
        match = "number" if parse_number(answer) is not None else "exact"
    if match == "exact":
        return {"match": "exact", "case_sensitive": failed.metadata.get("case_sensitive", True)}
    return {"match": "number"} if match == "number" else {}


def _keys(task: Task) -> tuple[str, str]:
    return split_key(task), task.prompt


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _solution(task: Task) -> str:
    return (task.reference if task.kind == "code" else task.answer) or ""
