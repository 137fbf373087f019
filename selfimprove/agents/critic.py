"""The critic (TIGERScore / DeCRIM): a structured error list for an answer, as advice.

A model (a teacher through litellm, or the student itself) reads a task and an
answer and replies with one JSON object: a verdict and the errors it found, each
with a location, a type, a severity and an explanation. All answers are critiqued
in one batched ``model.generate`` call.

    from selfimprove.agents.critic import critic_counts, critique, precision_recall
    critiques = critique(teacher, tasks, answers)
    counts = critic_counts(critiques, grader.grade(tasks, answers))
    precision, recall = precision_recall(counts)

A critique is advice, not a verdict: LLM error detectors miss most errors
(ReaLMistake), so the executable verifier decides and the critic's agreement with
it is tracked with ``critic_counts`` and ``precision_recall``.

The conversation comes from ``agents/prompts/critic.txt``. Parsing never raises on
model output: empty, truncated, non-JSON or enormous output gives a ``Critique``
with ``verdict=None``, the reason in ``parse_error`` and the raw text kept.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from selfimprove.agents.prompt_file import PromptFile
from selfimprove.models.base import ChatModel
from selfimprove.tasks.extract import storable
from selfimprove.types import Task, Verdict

PROMPT_PATH = Path(__file__).parent / "prompts" / "critic.txt"
PREFILL = '{"verdict": "'  # the reply's opening, for backends that continue it
PARSE_CHARS = 20_000  # only this much of the output is searched for the JSON object
RAW_CHARS = 4_000  # what a Critique keeps of the raw output
_CANDIDATES = 20  # how many "{" a parse tries at most, so garbage costs O(PARSE_CHARS)

_TRAILING_COMMA = re.compile(r",\s*([}\]])")
# Words models use instead of the asked-for ones, lower-cased. "high" is read as
# "major" (wrong in some cases) rather than "critical": only an explicit
# "critical"/"severe"/"fatal"/"blocker" claims the answer is wrong outright.
_VERDICTS = {"correct": "correct", "right": "correct", "wrong": "wrong", "incorrect": "wrong"}
_SEVERITIES = {
    **dict.fromkeys(("minor", "low", "trivial", "cosmetic"), "minor"),
    **dict.fromkeys(("major", "medium", "moderate", "high", "serious"), "major"),
    **dict.fromkeys(("critical", "severe", "fatal", "blocker"), "critical"),
}

Severity = Literal["minor", "major", "critical"]


class CriticIssue(BaseModel):
    """One error the critic found."""

    location: str  # where: "line 3", "the final answer", "range(n)"
    type: str  # short error type: "off-by-one", "arithmetic", "wrong comparison"
    severity: Severity
    explanation: str


class Critique(BaseModel):
    """The critic's view of one answer; ``verdict`` is None when its output did not parse."""

    task_id: str
    answer: str
    raw: str  # the model's output, clipped to RAW_CHARS
    verdict: Literal["correct", "wrong"] | None = None
    errors: list[CriticIssue] = Field(default_factory=list)
    parse_error: str | None = None

    @property
    def parsed(self) -> bool:
        return self.verdict is not None

    @property
    def says_wrong(self) -> bool | None:
        """Whether the critic calls the answer wrong; None when unparsed.

        The verdict ``"wrong"`` is wrong. A verdict ``"correct"`` that lists a major
        or critical error contradicts itself; the listed error wins (the prompt
        defines such errors as making the answer wrong). Minor errors alone do not.
        """
        if self.verdict is None:
            return None
        return self.verdict == "wrong" or any(e.severity != "minor" for e in self.errors)


class CriticPrompt(PromptFile):
    """The critic conversation: ``[check code]`` / ``[check answer]`` fill ``{check}``."""

    default_path = PROMPT_PATH
    default_part = "check"

    @property
    def check(self) -> dict[str, str]:
        """Task kind -> the ``{check}`` instruction."""
        return self.parts

    def render(self, task: Task, answer: str) -> list[dict[str, str]]:
        """The chat messages asking to critique ``answer`` to ``task``.

        Placeholders are replaced in one pass, so braces in the template, the task or
        the answer stay as they are.
        """
        return super().render(task, answer=answer)


def critique(
    model: ChatModel,
    tasks: Sequence[Task],
    answers: Sequence[str],
    *,
    temperature: float = 0.0,
    seed: int | None = 0,
    max_tokens: int = 256,
    prompt: CriticPrompt | None = None,
) -> list[Critique]:
    """Critique each answer in one batched ``generate`` call.

    Args:
        model: the critic (a teacher, or the student critiquing itself).
        tasks, answers: what to critique, aligned.
        temperature, seed, max_tokens: sampling for the critic's reply.
        prompt: the conversation template (default: ``prompts/critic.txt``).

    Returns:
        One critique per answer, in order. A prompt the backend returned nothing for
        is a parse failure.
    """
    if len(tasks) != len(answers):
        raise ValueError(f"got {len(tasks)} tasks but {len(answers)} answers")
    if not tasks:
        return []
    prompt = prompt or CriticPrompt.load()
    asks = [prompt.render(t, a) for t, a in zip(tasks, answers, strict=True)]
    # A backend that continues a final assistant message gets the reply's opening, so
    # even a small model answers in the format (its completion is the continuation).
    start = PREFILL if getattr(model, "continues_final_message", False) else ""
    if start:
        asks = [[*ask, {"role": "assistant", "content": start}] for ask in asks]
    # The reply is JSON that may span blank lines and code fences: no stop strings.
    rows = model.generate(
        asks, n=1, temperature=temperature, max_tokens=max_tokens, stop=None, seed=seed
    )
    found = []
    for i, (task, answer) in enumerate(zip(tasks, answers, strict=True)):
        row = rows[i] if i < len(rows) else []
        if not row:
            found.append(_failed(task.id, answer, "", "the model returned no completion"))
            continue
        got = parse_critique(task.id, answer, start + row[0].text)
        if got.parse_error and row[0].finish_reason == "length":
            got.parse_error += f" (the output hit max_tokens={max_tokens})"
        found.append(got)
    return found


def parse_critique(task_id: str, answer: str, raw: str) -> Critique:
    """Read the critic's output: the first JSON object in it with a valid verdict.

    Accepts code fences and prose around the object, trailing commas and
    Python-style dicts (single quotes). Verdicts and severities are matched
    case-insensitively, with a few synonyms ("incorrect" is "wrong", "high" is
    "major", "low" is "minor"; an unknown severity fails the parse), and so are
    keys. ``location`` and ``explanation`` default to "", numbers become strings.
    Never raises: on failure the critique has ``verdict=None`` and ``parse_error``.
    """
    raw = raw if isinstance(raw, str) else str(raw)
    text = raw[:PARSE_CHARS]
    if not text.strip():
        return _failed(task_id, answer, raw, "empty output")
    first_error: str | None = None
    start, tried = text.find("{"), 0
    while start >= 0 and tried < _CANDIDATES:
        tried += 1
        end = _object_end(text, start)
        if end is None:
            problem = "truncated JSON: the object is never closed"
        else:
            obj = _decode(text[start:end])
            fields, problem = _fields(obj) if obj is not None else (None, "not valid JSON")
            if fields is not None:
                return Critique(task_id=task_id, answer=answer, raw=_clip(raw), **fields)
        first_error = first_error or f"{problem} (object at char {start})"
        # the next "{" may be inside this one: {"critique": {"verdict": ...}} parses
        start = text.find("{", start + 1)
    why = first_error or "no JSON object in the output"
    if len(raw) > PARSE_CHARS:
        why += f" (searched the first {PARSE_CHARS} chars)"
    return _failed(task_id, answer, raw, why)


def critic_counts(critiques: Sequence[Critique], verdicts: Sequence[Verdict]) -> dict[str, int]:
    """The critic against the executable verifier, aligned per answer.

    ``tp``: says wrong, the verifier fails it; ``fp``: says wrong, it passes;
    ``fn``: says correct, it fails; ``tn``: says correct, it passes. Unparsed
    critiques count only in ``critiqued`` and ``parse_failures``.
    """
    if len(critiques) != len(verdicts):
        raise ValueError(f"got {len(critiques)} critiques but {len(verdicts)} verdicts")
    counts = dict.fromkeys(("critiqued", "parsed", "parse_failures", "tp", "fp", "fn", "tn"), 0)
    for c, v in zip(critiques, verdicts, strict=True):
        counts["critiqued"] += 1
        wrong = c.says_wrong
        if wrong is None:
            counts["parse_failures"] += 1
            continue
        counts["parsed"] += 1
        key = ("tp" if not v.passed else "fp") if wrong else ("fn" if not v.passed else "tn")
        counts[key] += 1
    return counts


def precision_recall(counts: Mapping[str, int]) -> tuple[float | None, float | None]:
    """Precision and recall of the critic's "wrong" calls against the verifier.

    Precision: of the answers the critic called wrong, how many the verifier fails.
    Recall: of the answers the verifier fails, how many the critic called wrong.
    None where the denominator is 0.
    """
    tp, fp, fn = counts.get("tp", 0), counts.get("fp", 0), counts.get("fn", 0)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    return precision, recall


def _object_end(text: str, start: int) -> int | None:
    """The index just past the ``}`` closing the ``{`` at ``start``, or None if unclosed.

    Braces inside single- or double-quoted strings do not count.
    """
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _decode(span: str) -> Any:
    """``span`` as JSON, then without trailing commas, then as a Python literal; or None."""
    for attempt in (span, _TRAILING_COMMA.sub(r"\1", span)):
        try:
            return json.loads(attempt)
        except (ValueError, RecursionError):
            pass
    try:
        return ast.literal_eval(span)
    except Exception:  # arbitrary text can raise nearly anything from the compiler
        return None


def _fields(obj: Any) -> tuple[dict[str, Any] | None, str]:
    """The validated ``verdict`` and ``errors`` of a decoded object, or None and why not."""
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    if not storable(obj):
        return None, "a string in it holds a lone surrogate escape such as \\ud800"
    obj = {str(k).strip().lower(): v for k, v in obj.items()}  # "Verdict" is "verdict"
    verdict = _VERDICTS.get(str(obj.get("verdict", "")).strip().lower())
    if verdict is None:
        return None, f"verdict must be 'correct' or 'wrong', got {obj.get('verdict')!r:.80}"
    items = obj.get("errors") or []
    if not isinstance(items, list):
        return None, f"errors must be a list, got {type(items).__name__}"
    errors = []
    for item in items:
        if not isinstance(item, dict):
            return None, f"each error must be an object, got {item!r:.80}"
        item = {
            str(k).strip().lower(): str(v) if isinstance(v, int | float) else v
            for k, v in item.items()
        }
        severity = item.get("severity")
        mapped = _SEVERITIES.get(severity.strip().lower()) if isinstance(severity, str) else None
        if mapped is None:
            return None, f"severity must be minor, major or critical, got {severity!r:.80}"
        item = {"location": "", "explanation": "", **item, "severity": mapped}
        try:
            errors.append(CriticIssue.model_validate(item))
        except ValidationError as e:
            return None, f"bad error entry: {e.errors()[0]['loc']} {e.errors()[0]['msg']}"
    return {"verdict": verdict, "errors": errors}, ""


def _failed(task_id: str, answer: str, raw: str, why: str) -> Critique:
    return Critique(task_id=task_id, answer=answer, raw=_clip(raw), parse_error=why)


def _clip(raw: str) -> str:
    if len(raw) <= RAW_CHARS:
        return raw
    return raw[:RAW_CHARS] + f"... [{len(raw) - RAW_CHARS} more chars]"
