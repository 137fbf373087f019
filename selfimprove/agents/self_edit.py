"""Self-edit error injection (RISE): the model itself plants one named error in a correct answer.

The programmatic operators (``answer_errors``, ``code_errors``) only know a few
syntactic edits. Here a model (the student in self mode, or a teacher) is asked to
plant one named subtle error (``SELF_EDIT_ERRORS``) by changing a few tokens and
to reply with the whole edited answer. An edit is kept only when it differs from
the original, changes at most ``max_changed_tokens`` tokens, still parses (code)
and the real grader now rejects it, so it pairs with the correct answer as a DPO
pair that differs in one error:

    from selfimprove.agents.self_edit import self_edit_errors
    results = self_edit_errors(model, tasks, corrects, grader, per_answer=1, seed=0)
    yields(results)   # {"self_edit:off_by_one": (asked, failing), ...}

All requests go out in one batched ``generate`` (per generation-settings group)
and all candidate edits are graded in one batch. Odd model output (empty, prose,
the unchanged answer, a rewrite of everything, an enormous reply, unprintable
characters) is simply not kept; nothing here raises on it. The request comes from
``agents/prompts/self_edit.txt``.
"""

from __future__ import annotations

import ast
import difflib
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from selfimprove.agents.inject import InjectionResult
from selfimprove.agents.injection import Injection
from selfimprove.agents.prompt_file import PromptFile
from selfimprove.eval.evaluate import generate_for_tasks
from selfimprove.models.base import ChatModel
from selfimprove.tasks.extract import extract_code
from selfimprove.tasks.verifiers import Grader
from selfimprove.types import Task

PROMPT_PATH = Path(__file__).parent / "prompts" / "self_edit.txt"

SELF_EDIT_ERRORS: dict[str, dict[str, str]] = {
    "answer": {
        "change_value": "one number or value in the answer becomes a nearby wrong one",
        "wrong_operator": "one step uses the wrong operation, e.g. - where + is needed",
        "wrong_substitution": "one step uses a wrong quantity (another number from the task "
        "or a wrong earlier result) and the rest follows from it",
        "delete_term": "one term or step of the working is left out",
        "swap_terms": "two quantities trade places where the order matters, e.g. b - a for a - b",
    },
    "code": {
        "off_by_one": "a bound or index is off by one, e.g. range(n + 1) or <= for <",
        "flipped_comparison": "one comparison points the wrong way, e.g. > for <, != for ==",
        "wrong_variable": "one place reads the wrong variable",
        "dropped_branch": "one if/elif branch or condition is left out",
        "wrong_return": "one return statement returns the wrong value",
    },
}
"""Task kind -> {error name: what the error is}, as the request names them."""

_TOKEN = re.compile(r"\w+|\S")
_SLACK_CHARS = 200  # a reply may wrap its edit in a fence and a sentence
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


class ChatTemplate(PromptFile):
    """A chat prompt file whose ``[reply code]`` / ``[reply answer]`` parts fill ``{reply}``.

    ``{task}`` becomes the task's prompt; the other placeholders are the keyword
    arguments of ``render``. Also the template of ``review``.
    """

    default_part = "reply"

    @property
    def reply(self) -> dict[str, str]:
        """Task kind -> the ``{reply}`` instruction."""
        return self.parts


def changed_tokens(before: str, after: str) -> int:
    """How many word/symbol tokens an edit replaces, inserts or deletes (whitespace ignored)."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def self_edit_errors(
    model: ChatModel,
    tasks: Sequence[Task],
    completions: Sequence[str],
    grader: Grader,
    *,
    per_answer: int = 1,
    seed: int = 0,
    errors: Sequence[str] | None = None,
    max_changed_tokens: int = 8,
    temperature: float = 0.0,
    prompt: ChatTemplate | None = None,
) -> list[InjectionResult]:
    """Ask ``model`` to plant ``per_answer`` named errors in each correct completion.

    Args:
        model: the editor (the student itself, or a teacher).
        tasks, completions: verified-correct answers, aligned.
        grader: the real verifier; only edits it rejects are kept.
        per_answer: requests per answer, each for a different error while any are left.
        seed: picks the errors, per answer from ``(seed, task id, completion)`` so the
            choice does not depend on the rest of the batch; also the sampling seed.
        errors: restrict to these names from ``SELF_EDIT_ERRORS`` (default: all).
        max_changed_tokens: a larger edit is a rewrite, not one planted error.
        temperature: sampling temperature of the edits (0: greedy).
        prompt: the request template (default: ``prompts/self_edit.txt``).

    Returns:
        One ``InjectionResult`` per answer: kept edits (operator ``"self_edit:<error>"``,
        the verifier's reason), ``tried`` = requests and ``failing`` = small edits the
        grader rejected, both by operator.

    Raises:
        ValueError: mismatched lengths, ``per_answer < 0``, or an unknown error name.
    """
    if len(tasks) != len(completions):
        raise ValueError(f"got {len(tasks)} tasks but {len(completions)} completions")
    if per_answer < 0:
        raise ValueError(f"per_answer must be >= 0, got {per_answer!r}")
    known = {name for family in SELF_EDIT_ERRORS.values() for name in family}
    unknown = sorted(set(errors or ()) - known)
    if unknown:
        raise ValueError(f"unknown self-edit errors {unknown!r}; choose from {sorted(known)}")
    prompt = prompt or ChatTemplate.load(PROMPT_PATH)
    requests = [  # (answer index, error name)
        (i, name)
        for i, (task, completion) in enumerate(zip(tasks, completions, strict=True))
        for name in _pick_errors(
            task, errors, per_answer, random.Random(f"{seed}:{task.id}:{completion}")
        )
    ]
    asks = [
        prompt.render(
            tasks[i],
            answer=_shown(tasks[i], completions[i]),
            error=name,
            description=SELF_EDIT_ERRORS[tasks[i].kind][name],
        )
        for i, name in requests
    ]
    rows = generate_for_tasks(
        model, [tasks[i] for i, _ in requests], asks, temperature=temperature, seed=seed
    )
    replies = [row[0].text if row else "" for row in rows]  # no reply: nothing to keep
    return _verify(model.name, tasks, completions, grader, requests, replies, max_changed_tokens)


def _verify(
    editor: str,
    tasks: Sequence[Task],
    completions: Sequence[str],
    grader: Grader,
    requests: list[tuple[int, str]],
    replies: list[str],
    max_changed_tokens: int,
) -> list[InjectionResult]:
    """Keep the small edits the grader rejects (one batch); count requests and failing edits."""
    candidates: list[tuple[int, str, str, int]] = []  # (answer index, error, text, changed)
    for (i, name), reply in zip(requests, replies, strict=True):
        edited = _edit_of(tasks[i], completions[i], reply)
        if edited is not None and 0 < edited[1] <= max_changed_tokens:
            candidates.append((i, name, *edited))
    verdicts = grader.grade([tasks[c[0]] for c in candidates], [c[2] for c in candidates])
    kept: list[list[Injection]] = [[] for _ in tasks]
    tried: list[Counter[str]] = [Counter() for _ in tasks]
    failing: list[Counter[str]] = [Counter() for _ in tasks]
    for i, name in requests:
        tried[i][f"self_edit:{name}"] += 1
    for (i, name, text, changed), verdict in zip(candidates, verdicts, strict=True):
        if verdict.passed:
            continue  # the edit did not break the answer: not a negative
        failing[i][f"self_edit:{name}"] += 1
        if all(k.text != text for k in kept[i]):
            what = SELF_EDIT_ERRORS[tasks[i].kind][name]
            kept[i].append(
                Injection(
                    text=text,
                    operator=f"self_edit:{name}",
                    description=f"asked {editor} for {name} ({what}); {changed} tokens changed",
                    reason=verdict.reason,
                )
            )
    return [
        InjectionResult(injections=k, tried=dict(t), failing=dict(f))
        for k, t, f in zip(kept, tried, failing, strict=True)
    ]


def _pick_errors(
    task: Task, errors: Sequence[str] | None, per_answer: int, rng: random.Random
) -> list[str]:
    """``per_answer`` error names that fit the task's kind, all different while any are left."""
    names = [
        n for n in sorted(SELF_EDIT_ERRORS.get(task.kind, {})) if errors is None or n in errors
    ]
    if not names:
        return []
    rng.shuffle(names)
    return [names[k % len(names)] for k in range(per_answer)]


def _shown(task: Task, completion: str) -> str:
    """The answer as the request shows it: code in a fence, so the reply mirrors it."""
    if task.kind != "code":
        return completion.strip()
    code = extract_code(completion).strip("\n")
    return f"```python\n{code}\n```"


def _edit_of(task: Task, original: str, reply: str) -> tuple[str, int] | None:
    """The edited completion in the original's form and the tokens it changed; None if unusable.

    Code is compared code to code, so fences and prose around it do not count as
    edits, and the edited code goes back where the original's code was. Code that
    parsed before and no longer parses is a broken answer, not a subtle error; so is a
    reply much longer than the original, or one that adds unprintable characters (NUL,
    control characters, bidi or zero-width marks).
    """
    if len(reply) > 2 * len(original) + _SLACK_CHARS or _odd(reply) - _odd(original):
        return None
    if task.kind != "code":
        text = reply.strip()
        if not text or ("```" in text and "```" not in original):  # a fence: a new format
            return None
        return text, changed_tokens(original, text)
    before, after = extract_code(original), extract_code(reply).strip("\n")
    if not after.strip() or (_parses(before) and not _parses(after)):
        return None
    fences = list(_FENCE.finditer(original))
    if len(fences) == 1:
        start, end = fences[0].span(1)
        text = original[:start] + after + "\n" + original[end:].lstrip("\n")
    else:
        text = f"{after}\n" if not fences else f"```python\n{after}\n```"
    return text, changed_tokens(before, after)


def _odd(text: str) -> set[str]:
    """The unprintable characters in ``text`` other than line breaks and tabs."""
    return {ch for ch in text if not ch.isprintable() and ch not in "\n\r\t"}


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


__all__ = ["SELF_EDIT_ERRORS", "ChatTemplate", "changed_tokens", "self_edit_errors"]
