"""Error-injection operators for short answers (RISE): arithmetic, choices, words.

Each operator is a pure function ``(task, completion, rng) -> Injection | None``
that edits a few characters of a verified-correct ``completion`` to plant one
typical error, or returns None when it does not apply. ``selfimprove.agents.inject``
runs them and keeps only edits the verifier now rejects:

    from selfimprove.agents.answer_errors import ANSWER_OPERATORS
    injection = ANSWER_OPERATORS["change_value"](task, "17 + 25 = 42", random.Random(0))
    injection.text  # "17 + 25 = 43"

Operators: ``change_value`` (final value ±1, ±10, digits swapped, off by 2-5),
``wrong_operation`` (one operator of the expression swapped, e.g. a - b for
a + b), ``delete_term`` and ``swap_terms`` (on the worked expression when the
completion shows one, else on ``task.metadata["expression"]``),
``wrong_substitution`` (a step of the working uses another known quantity, a
number from the prompt or an earlier result, in place of the one it needs, and
the later steps follow it), ``other_choice``
(a comparison answers another of its choices), ``wrong_letter`` (a neighbouring
letter, a dropped letter or two letters swapped) and ``wrong_case``.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from selfimprove.agents.injection import Edit, Injection, Operator, splice
from selfimprove.tasks.extract import extract_choice, extract_number
from selfimprove.tasks.verifiers import answer_match
from selfimprove.types import Task

_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
# A worked expression such as "45 + 38 - 20"; numbers and + - * only.
_EXPRESSION = re.compile(r"(?<![\w.])-?\d+(?:\s*[-+*]\s*-?\d+)+(?![\w.])")
_TOKEN = re.compile(r"-?\d+|[-+*]")
_SWAPS = {"+": ("-", "*"), "-": ("+",), "*": ("+", "-")}
_RESULT = re.compile(r"\s*=\s*(-?\d+)(?!\w|\.\d)")  # "= 68" after a worked step
_OPERAND = re.compile(r"-?\d+")
_MAX_EDITS = 6  # RISE edits a few tokens; more and the pair differs in more than one error


def change_value(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """The final number becomes a nearby wrong one (±1, ±10, digits swapped, off by 2-5)."""
    answer = _numeric_answer(task, completion)
    if answer is None:
        return None
    value = answer.value
    options = [
        value + 1,
        value - 1,
        value + 10,
        value - 10,
        value + rng.choice((-1, 1)) * rng.randint(2, 5),
    ]
    digits = str(abs(value))
    if len(digits) >= 2 and digits[-1] != digits[-2]:
        swapped = int(digits[:-2] + digits[-1] + digits[-2])
        options.append(-swapped if value < 0 else swapped)
    # keep the sign: a count or a sum of positives turning negative is no subtle slip
    new = rng.choice([v for v in options if v != value and (v < 0) == (value < 0)])
    return Injection(
        text=splice(completion, [(*span, str(new)) for span in answer.spans]),
        operator="change_value",
        description=f"final answer {value} -> {new}",
    )


def wrong_operation(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """One operator of the expression is swapped (a - b for a + b) and the answer follows it."""
    return _rework(task, completion, rng, "wrong_operation", _swap_operator)


def delete_term(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """One term of the expression is forgotten and the answer follows it."""
    return _rework(task, completion, rng, "delete_term", _drop_term)


def swap_terms(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """Two neighbouring numbers trade places where that changes the result (b - a for a - b)."""
    return _rework(task, completion, rng, "swap_terms", _swap_numbers)


def wrong_substitution(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """A step uses a wrong known quantity: another number of the prompt, or an earlier result.

    In "45 + 23 = 68, 68 - 17 = 51" the 23 may become the prompt's 17
    ("45 + 17 = 62, 62 - 17 = 45") or the carried 68 the earlier 45
    ("45 - 17 = 28"); every later step and the final answer are recomputed, so the
    working stays consistent around the one wrong value. A bare answer is reworked
    from ``task.metadata["expression"]``.
    """
    answer = _numeric_answer(task, completion)
    if answer is None:
        return None
    steps = _steps(task, completion, answer)
    if steps is None:
        return None
    prompt_numbers = {int(m.group()) for m in _OPERAND.finditer(task.prompt)}
    candidates = []
    for i, step in enumerate(steps):
        known = prompt_numbers | {s.result for s in steps[:i]}
        for j in range(0, len(step.tokens), 2):
            for new in sorted(known - {int(step.tokens[j])}):
                found = _substitute(steps, i, j, new, answer)
                if found is not None:
                    candidates.append((i, j, new, *found))
    if not candidates:
        return None
    i, j, new, edits, value = rng.choice(candidates)
    old = steps[i].tokens[j]
    return Injection(
        text=splice(completion, edits),
        operator="wrong_substitution",
        description=f"used {new} for {old} in {' '.join(steps[i].tokens)}; "
        f"answer {answer.value} -> {value}",
    )


def other_choice(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """A comparison answer names another of the task's choices."""
    if answer_match(task) != "choice":
        return None
    choices = [str(c) for c in task.metadata.get("choices", [])]
    picked, _ = extract_choice(completion, choices)
    others = [c for c in choices if c != picked]
    if picked is None or not others:
        return None
    spans = [m.span() for m in re.finditer(rf"(?<![\w.]){re.escape(picked)}(?![\w])", completion)]
    if not spans:
        return None
    new = rng.choice(others)
    start, end = spans[-1]
    return Injection(
        text=splice(completion, [(start, end, new)]),
        operator="other_choice",
        description=f"picked {new} instead of {picked}",
    )


def wrong_letter(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """One letter of a word answer is off: a neighbouring letter, dropped, or swapped."""
    span = _exact_span(task, completion)
    if span is None:
        return None
    start, end = span
    word = completion[start:end]
    letters = [i for i, c in enumerate(word) if c.isalpha() and c.isascii()]
    if not letters:
        return None
    i = rng.choice(letters)
    kinds = ["neighbour"]
    if len(word) > 1:
        kinds.append("drop")
    if i + 1 < len(word) and word[i + 1] != word[i]:
        kinds.append("swap")
    kind = rng.choice(kinds)
    if kind == "neighbour":
        base = "a" if word[i].islower() else "A"
        offset = ord(word[i]) - ord(base)
        shifted = chr(ord(base) + (offset + (1 if offset < 25 else -1)))
        new, what = word[:i] + shifted + word[i + 1 :], f"letter {word[i]!r} -> {shifted!r}"
    elif kind == "drop":
        new, what = word[:i] + word[i + 1 :], f"dropped letter {word[i]!r}"
    else:
        new, what = word[:i] + word[i + 1] + word[i] + word[i + 2 :], f"swapped {word[i : i + 2]!r}"
    return Injection(
        text=splice(completion, [(start, end, new)]), operator="wrong_letter", description=what
    )


def wrong_case(task: Task, completion: str, rng: random.Random) -> Injection | None:
    """One letter of a case-sensitive word answer has the wrong case."""
    if not task.metadata.get("case_sensitive", True):
        return None  # the verifier ignores case: such an edit would still pass
    span = _exact_span(task, completion)
    if span is None:
        return None
    start, end = span
    letters = [
        i
        for i in range(start, end)
        if completion[i].isalpha() and completion[i].swapcase() != completion[i]
    ]
    if not letters:
        return None
    i = rng.choice(letters)
    flipped = completion[i].swapcase()
    return Injection(
        text=splice(completion, [(i, i + 1, flipped)]),
        operator="wrong_case",
        description=f"letter {completion[i]!r} -> {flipped!r}",
    )


ANSWER_OPERATORS: dict[str, Operator] = {
    "change_value": change_value,
    "wrong_operation": wrong_operation,
    "delete_term": delete_term,
    "swap_terms": swap_terms,
    "wrong_substitution": wrong_substitution,
    "other_choice": other_choice,
    "wrong_letter": wrong_letter,
    "wrong_case": wrong_case,
}


# --- expressions ------------------------------------------------------------------------


def _rework(
    task: Task,
    completion: str,
    rng: random.Random,
    name: str,
    change: Callable[[list[str], random.Random], list[str] | None],
) -> Injection | None:
    """Change the expression (shown in the completion, else the task's) and the answer with it."""
    answer = _numeric_answer(task, completion)
    if answer is None:
        return None
    shown = answer.shown.group() if answer.shown else None
    source = shown or str(task.metadata.get("expression", ""))
    tokens = _TOKEN.findall(source)
    if len(tokens) < 3 or _evaluate(tokens) != answer.value:
        return None  # not the expression this answer computes
    changed = change(tokens, rng)
    new_value = None if changed is None else _evaluate(changed)
    if changed is None or new_value is None or new_value == answer.value:
        return None
    new_source = " ".join(changed)
    edits: list[Edit] = [(*span, str(new_value)) for span in answer.spans]
    if answer.shown:
        edits.append((*answer.shown.span(), new_source))
    return Injection(
        text=splice(completion, edits),
        operator=name,
        description=f"computed {new_source} = {new_value} instead of {source} = {answer.value}",
    )


def _swap_operator(tokens: list[str], rng: random.Random) -> list[str] | None:
    at = rng.choice(range(1, len(tokens), 2))
    return [*tokens[:at], rng.choice(_SWAPS[tokens[at]]), *tokens[at + 1 :]]


def _drop_term(tokens: list[str], rng: random.Random) -> list[str] | None:
    at = rng.choice(range(0, len(tokens), 2))
    if at == 0:
        return tokens[2:] if tokens[1] == "+" else None  # "a - b" minus its first term is not "b"
    return tokens[: at - 1] + tokens[at + 1 :]


def _swap_numbers(tokens: list[str], rng: random.Random) -> list[str] | None:
    positions = list(range(0, len(tokens) - 2, 2))
    rng.shuffle(positions)
    for at in positions:
        changed = list(tokens)
        changed[at], changed[at + 2] = tokens[at + 2], tokens[at]
        if _evaluate(changed) != _evaluate(tokens):
            return changed
    return None


@dataclass(frozen=True)
class _Step:
    """One worked step "a + b = r": its tokens, where each sits (None: not written), its result."""

    tokens: list[str]
    spans: list[tuple[int, int] | None]
    result: int
    result_span: tuple[int, int] | None  # "= r" of a step before the last; None on the last


def _steps(task: Task, completion: str, answer: _NumericAnswer) -> list[_Step] | None:
    """The worked steps that end in the answer; the task's expression when none is shown."""
    if answer.shown is None:
        source = str(task.metadata.get("expression", ""))
        tokens = _TOKEN.findall(source)
        if not _well_formed(tokens) or _evaluate(tokens) != answer.value:
            return None
        return [_Step(tokens, [None] * len(tokens), answer.value, None)]
    steps = []
    for m in _EXPRESSION.finditer(completion[: answer.shown.start()]):
        written = _RESULT.match(completion, m.end())
        step = _step(m, written)
        if step is not None and written is not None and step.result == int(written.group(1)):
            steps.append(step)
    last = _step(answer.shown, None)
    return None if last is None else [*steps, last]


def _step(match: re.Match[str], written: re.Match[str] | None) -> _Step | None:
    found = list(_TOKEN.finditer(match.group()))
    tokens = [t.group() for t in found]
    value = _evaluate(tokens)
    if not _well_formed(tokens) or value is None:
        return None
    spans: list[tuple[int, int] | None] = [
        (match.start() + t.start(), match.start() + t.end()) for t in found
    ]
    return _Step(tokens, spans, value, written.span(1) if written else None)


def _well_formed(tokens: list[str]) -> bool:
    """Numbers at even places, operators at odd ones ("68 -17" tokenizes as two numbers)."""
    return len(tokens) % 2 == 1 and all(
        (t not in _SWAPS) == (k % 2 == 0) for k, t in enumerate(tokens)
    )


def _substitute(
    steps: list[_Step], at: int, operand: int, new: int, answer: _NumericAnswer
) -> tuple[list[Edit], int] | None:
    """The edits that put ``new`` in step ``at`` and carry its effect on; None if no subtle error."""
    edits: dict[tuple[int, int], str] = {}
    carried: dict[int, int] = {}  # an earlier step's right result -> its result after the edit
    value: int | None = None
    for k, step in enumerate(steps[at:], at):
        tokens = list(step.tokens)
        for p in range(0, len(tokens), 2):
            if k == at and p == operand:
                tokens[p] = str(new)
            elif k > at and int(tokens[p]) in carried:
                tokens[p] = str(carried[int(tokens[p])])
            if tokens[p] != step.tokens[p]:
                if int(tokens[p]) < 0 <= int(step.tokens[p]):
                    return None  # a negative quantity out of nowhere is no subtle slip
                span = step.spans[p]
                if span is not None:
                    edits[span] = tokens[p]
        value = _evaluate(tokens)
        if value is None or value < 0 <= step.result or value == 0 != step.result:
            return None  # "68 - 68 = 0" or a negative count gives the error away
        if value != step.result:
            carried[step.result] = value
            if step.result_span is not None:
                edits[step.result_span] = str(value)
    final = value  # the last step's: it computes the answer
    if final is None or final == answer.value:
        return None  # the change never reached the answer
    edits.update({span: str(final) for span in answer.spans})
    if len(edits) > _MAX_EDITS:
        return None
    return [(start, end, text) for (start, end), text in edits.items()], final


def _evaluate(tokens: list[str]) -> int | None:
    """The value of an integer expression of + - * (Python precedence); None if malformed."""
    try:
        tree = ast.parse(" ".join(tokens), mode="eval").body
    except SyntaxError:
        return None
    return _value(tree)


def _value(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        left, right = _value(node.left), _value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        return left - right if isinstance(node.op, ast.Sub) else left * right
    return None


# --- finding the answer in the text -----------------------------------------------------


@dataclass(frozen=True)
class _NumericAnswer:
    value: int
    spans: list[tuple[int, int]]  # each place the final value is written after the work
    shown: re.Match[str] | None  # the worked expression that computes it, when shown


def _numeric_answer(task: Task, completion: str) -> _NumericAnswer | None:
    """The final integer answer, where it is written, and the work shown before it."""
    if answer_match(task) != "number":
        return None
    value, _ = extract_number(completion)
    if value is None or not float(value).is_integer():
        return None
    written = [m for m in _NUMBER.finditer(completion) if _as_float(m.group()) == value]
    if not written:
        return None
    before = [m for m in _EXPRESSION.finditer(completion) if m.end() <= written[-1].start()]
    shown = before[-1] if before else None
    if shown is not None and _evaluate(_TOKEN.findall(shown.group())) != value:
        shown = None  # some other arithmetic: leave it alone
    # "12 + 30 = 42. The answer is 42.": every 42 after the work, so the text stays consistent
    tail = shown.end() if shown else (before[-1].end() if before else 0)
    spans = [m.span() for m in written if m.start() >= tail]
    return _NumericAnswer(int(value), spans, shown)


def _exact_span(task: Task, completion: str) -> tuple[int, int] | None:
    """Where the reference answer of an exact-match task is written (the last occurrence)."""
    if answer_match(task) != "exact" or not task.answer:
        return None
    flags = 0 if task.metadata.get("case_sensitive", True) else re.IGNORECASE
    spans = [m.span() for m in re.finditer(re.escape(task.answer), completion, flags)]
    return spans[-1] if spans else None


def _as_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", ""))
    except ValueError:
        return None
