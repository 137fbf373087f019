"""Read tasks and solutions from JSONL files in the common public formats.

One object per line; the format is recognised per line from its keys:

- **selfimprove**: the fields of ``selfimprove.types.Task`` (``id``, ``prompt``, ...).
- **HumanEval**: ``task_id``, ``prompt``, ``test``, ``entry_point`` (``canonical_solution``
  becomes the reference).
- **MBPP**: ``text``, ``code``, ``test_list`` (``task_id`` optional); the prompt shows
  the first test so the function name and signature are known, as is customary.
- **GSM8K**: ``question``, ``answer`` ending in ``#### N``.

Every problem raises ``TaskFileError`` naming the file, the line and what to do.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from selfimprove.types import Split, Task

MAX_LINE_BYTES = 4 << 20  # one task per line; longer means this is not a JSONL task file
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ONE_OBJECT = 'each line must be one JSON object, e.g. {"id": "t1", "prompt": "..."}'
_ONE_SOLUTION = 'each line needs {"task_id": ..., "completion": "..."}'


class TaskFileError(ValueError):
    """A task or solution file is unreadable or malformed; the message says where."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Blank lines are skipped but counted, so line numbers match an editor's. A line
    is read at most ``MAX_LINE_BYTES`` at a time, so a huge or binary file fails
    fast instead of filling memory.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()!r})"
        raise TaskFileError(path, None, f"file does not exist; check the path{where}") from None
    except IsADirectoryError:
        raise TaskFileError(path, None, "is a folder; give the path of a JSONL file") from None
    except OSError as exc:
        raise TaskFileError(path, None, f"cannot open: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), 1):
            obj = _parse_line(path, number, raw)
            if obj is not None:
                yield number, obj


def _parse_line(path: Path, number: int, raw: bytes) -> dict[str, Any] | None:
    """The object on one line, None for a blank line."""
    if len(raw) > MAX_LINE_BYTES:
        raise TaskFileError(
            path,
            number,
            f"line is longer than {MAX_LINE_BYTES >> 20} MiB, the limit for one task; "
            "is this a JSONL file (one task per line)?",
        )
    if b"\x00" in raw:
        if number == 1 and raw.startswith(_UTF16_BOMS):
            raise TaskFileError(path, number, "file is UTF-16 text; re-save it as UTF-8")
        raise TaskFileError(
            path,
            number,
            f"binary data (NUL byte at column {raw.index(0) + 1}); expected UTF-8 JSONL text "
            "(UTF-16 text also has NUL bytes: re-save it as UTF-8)",
        )
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise TaskFileError(
            path, number, f"not UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskFileError(
            path, number, f"invalid JSON ({exc.msg} at column {exc.colno}); {_ONE_OBJECT}"
        ) from None
    if not isinstance(obj, dict):
        raise TaskFileError(
            path, number, f"expected a JSON object, got {type(obj).__name__}; {_ONE_OBJECT}"
        )
    return obj


def detect_format(obj: dict[str, Any]) -> str | None:
    """The format name a task object is in, or None when unrecognised."""
    if {"id", "prompt"} <= obj.keys():
        return "selfimprove"
    if {"task_id", "prompt", "test", "entry_point"} <= obj.keys():
        return "humaneval"
    if {"text", "code", "test_list"} <= obj.keys():
        return "mbpp"
    if {"question", "answer"} <= obj.keys():
        return "gsm8k"
    return None


def task_from_object(obj: dict[str, Any], *, default_id: str, split: Split, suite: str) -> Task:
    """Convert one object in any supported format to a ``Task`` (may raise ValueError)."""
    fmt = detect_format(obj)
    if fmt == "selfimprove":
        data = {"split": split, "suite": suite, **obj}
    elif fmt == "humaneval":
        data = {
            "id": str(obj["task_id"]),
            "prompt": obj["prompt"],
            "kind": "code",
            "tests": obj["test"],
            "entry_point": obj["entry_point"],
            "reference": obj.get("canonical_solution"),
            "split": split,
            "suite": suite,
        }
    elif fmt == "mbpp":
        data = _from_mbpp(obj, default_id, split, suite)
    elif fmt == "gsm8k":
        data = _from_gsm8k(obj, default_id, split, suite)
    else:
        raise ValueError(
            f"unrecognised task format with keys {sorted(obj)!r}; expected selfimprove "
            "(id, prompt), HumanEval (task_id, prompt, test, entry_point), "
            "MBPP (text, code, test_list) or GSM8K (question, answer)"
        )
    try:
        return Task.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ValueError(f"invalid {fmt} task: {problems}") from None


def _problem(error: Any) -> str:
    """One pydantic error as ``field = value: what it should be``."""
    field = ".".join(map(str, error["loc"]))
    if not field:
        return f"task: {error['msg']}"
    return f"{field} = {_short(error.get('input'))}: {error['msg']}"


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def load_tasks(path: str | Path, *, split: Split = "train", suite: str | None = None) -> list[Task]:
    """All tasks in a JSONL file; ids must be unique within it."""
    path = Path(path)
    suite = suite or path.stem
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for number, obj in read_jsonl(path):
        try:
            task = task_from_object(obj, default_id=f"{suite}/{number}", split=split, suite=suite)
        except ValueError as exc:
            raise TaskFileError(path, number, str(exc)) from None
        if task.id in seen:
            raise TaskFileError(
                path,
                number,
                f"duplicate task id {task.id!r} (first on line {seen[task.id]}); "
                "ids must be unique within a file: rename or remove one",
            )
        seen[task.id] = number
        tasks.append(task)
    if not tasks:
        raise TaskFileError(path, None, f"no tasks in file; {_ONE_OBJECT}")
    return tasks


def load_solutions(path: str | Path) -> list[tuple[int, str, str]]:
    """``(line, task_id, completion)`` for each line of a solutions JSONL file."""
    rows = []
    for number, obj in read_jsonl(path):
        missing = [k for k in ("task_id", "completion") if k not in obj]
        if missing:
            raise TaskFileError(
                path,
                number,
                f"missing field(s) {missing!r}; {_ONE_SOLUTION}",
            )
        if not isinstance(obj["completion"], str):
            raise TaskFileError(
                path,
                number,
                f"completion must be a string, got {type(obj['completion']).__name__} "
                f"{_short(obj['completion'])}; put the answer or code in quotes",
            )
        rows.append((number, str(obj["task_id"]), obj["completion"]))
    if not rows:
        raise TaskFileError(path, None, f"no solutions in file; {_ONE_SOLUTION}")
    return rows


def _from_mbpp(obj: dict[str, Any], default_id: str, split: Split, suite: str) -> dict[str, Any]:
    tests = obj["test_list"]
    if not isinstance(tests, list) or not tests:
        raise ValueError("MBPP task needs a non-empty test_list")
    match = re.search(r"def\s+(\w+)\s*\(", obj["code"]) or re.search(r"(\w+)\s*\(", tests[0])
    setup = obj.get("test_setup_code") or ""
    return {
        "id": str(obj.get("task_id", default_id)),
        "prompt": f"{obj['text']}\nYour code should pass this test:\n{tests[0]}\n",
        "kind": "code",
        "tests": "\n".join([setup, *tests]).strip(),
        "entry_point": match.group(1) if match else None,
        "reference": obj["code"],
        "split": split,
        "suite": suite,
    }


def _from_gsm8k(obj: dict[str, Any], default_id: str, split: Split, suite: str) -> dict[str, Any]:
    answer = str(obj["answer"])
    if "####" not in answer:
        raise ValueError("GSM8K answer must end in '#### <number>'")
    final = answer.rsplit("####", 1)[1].strip().replace(",", "")
    return {
        "id": str(obj.get("id", default_id)),
        "prompt": obj["question"],
        "kind": "answer",
        "answer": final,
        "reference": answer,
        "split": split,
        "suite": suite,
        "metadata": {"match": "number"},
    }
