"""Agent Workflow Memory (AWM): induce reusable workflows from verified solutions.

A workflow is the routine behind solved tasks of one kind (a scope, see
``workflow_scope``), with the instance-specific values replaced by placeholders,
so that it can guide later attempts at other tasks of that kind.

    from selfimprove.agents.workflows import induce_workflows, workflow_prompt
    offline = induce_workflows(train, [t.reference or t.answer for t in train], origin="offline")
    online = induce_workflows(solved, verified_answers, teacher=teacher, round=2)
    messages = workflow_prompt(new_task, [offline[0]])

Two inducers:

- ``template`` (no model): numbers, quoted strings and ordinals ("third") of the
  task statement become placeholders (``<A>``, ``<B>``, ``<WORD>``, ``<CH>``,
  ``<S>``); the same values in the answer become the same placeholders, and an
  answer computed from them is described ("the value of <A> + <B>", "the largest
  of <A>, <B>", "<WORD> spelled backwards"). Within a scope the abstract form that
  most examples share wins, and its values that never vary (the 'Fizz' of FizzBuzz)
  are put back: they are routine, not instance.
- ``teacher``: one batched call shows a teacher model 2-3 examples per workflow
  (``prompts/induce_workflow.txt``) and asks for JSON steps. Output that is not
  such JSON, or that repeats an instance's values, falls back to the template
  workflow (``inducer="template"``); nothing here raises on model output.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from selfimprove.agents.prompt_file import PromptFile
from selfimprove.models.base import ChatModel, ModelError
from selfimprove.tasks import SUITES
from selfimprove.tasks.extract import answer_candidate, extract_code, storable
from selfimprove.types import Task, content_id

PROMPT_PATH = Path(__file__).parent / "prompts" / "induce_workflow.txt"
TEACHER_MAX_TOKENS = 400
SHOWN_EXAMPLES = 3  # examples per teacher prompt
SHOWN_CHARS = 700  # per example answer, and per workflow in a student prompt
PARSE_CHARS = 20_000  # how much of a teacher reply is read
_ORDINALS = ("second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_QUOTES = ("'", '"')
_VALUE = re.compile(
    r"(?<!\w)(?P<q>['\"])(?P<quoted>[^'\"\n]{1,40})(?P=q)(?!\w)"
    r"|(?<![\w.])(?P<num>-?\d+(?:\.\d+)?)(?!\w)"
    rf"|\b(?P<ord>{'|'.join(_ORDINALS)})\b"
)
_NUM = r"-?\d+(?:\.\d+)?"
_EXPRESSION = re.compile(rf"(?<![\w.]){_NUM}(?:\s*[-+*/]\s*{_NUM})+(?!\w)")
_EXAMPLE_LINE = re.compile(r"^\s*(?:for\s+)?examples?\b.*(?:\n|$)", re.IGNORECASE | re.MULTILINE)
_WRITE_A_FUNCTION = re.compile(r"^(?:write|implement)\s+an?\s+(?:python\s+)?function\s+", re.I)
_WORD_RELATIONS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("{}", lambda w: w),
    ("{} in uppercase", str.upper),
    ("{} in lowercase", str.lower),
    ("{} spelled backwards", lambda w: w[::-1]),
    ("the first letter of {}", lambda w: w[:1]),
    ("the last letter of {}", lambda w: w[-1:]),
    ("the number of letters in {}", lambda w: str(len(w))),
)

Ref = tuple[int, str]  # (slot index, form: "" number, a quote char, or "ord")
Pieces = tuple[str | Ref, ...]


class Workflow(BaseModel):
    """A reusable routine for tasks of one scope, values abstracted into placeholders."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str
    title: str
    text: str
    source_task_ids: list[str] = []
    round: int = 0
    origin: Literal["offline", "online"] = "online"
    inducer: Literal["template", "teacher"] = "template"

    @property
    def id(self) -> str:
        return content_id("workflow", self.scope, self.text)


def workflow_scope(task: Task) -> str:
    """What a workflow of ``task`` applies to: ``code:<template>``, ``<suite>:<level>`` for
    the built-in answer suites (each level is its own kind of task), else ``<suite>:<kind>``."""
    template = task.metadata.get("template")
    if template:
        return f"{task.suite}:{template}"
    if task.suite in SUITES:
        return f"{task.suite}:{task.difficulty}"
    return f"{task.suite}:{task.kind}"


@dataclass(frozen=True)
class _Abstract:
    """One solved task with its values lifted into slots (indices in order of appearance)."""

    task: Task
    target: str  # the verified answer (code, or the final answer of an answer task)
    statement: Pieces
    answer: Pieces
    values: tuple[str, ...]
    kinds: tuple[str, ...]

    @property
    def key(self) -> tuple:
        return self.statement, self.answer, self.kinds


def _pieces(text: str, slot: Callable[[str, str], int | None]) -> Pieces:
    out: list[str | Ref] = []
    last = 0
    for m in _VALUE.finditer(text):
        if m["quoted"] is not None:
            value, form = m["quoted"], m["q"]
        elif m["num"] is not None:
            value, form = m["num"], ""
        else:
            value, form = str(_ORDINALS.index(m["ord"]) + 2), "ord"
        index = slot(value, form)
        if index is not None:
            out += [text[last : m.start()], (index, form)]
            last = m.end()
    out.append(text[last:])
    return tuple(p for p in out if p != "")


def _kind(quoted: bool, value: str) -> str:
    if not quoted:
        return "NUM"
    return "CH" if len(value) == 1 else "WORD" if value.isalpha() else "S"


def _evaluate(expression: str) -> float | None:
    """The value of a plain arithmetic expression (numbers and + - * / only), else None."""
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)
    try:
        tree = ast.parse(expression, mode="eval")
        if all(isinstance(node, allowed) for node in ast.walk(tree)):
            return float(eval(compile(tree, "<expression>", "eval"), {"__builtins__": {}}))
    except (SyntaxError, ArithmeticError, ValueError):
        pass
    return None


def _number(text: str) -> float | None:
    return float(text) if re.fullmatch(_NUM, text.strip()) else None


def _derived(statement: str, answer: str, slots: dict[tuple[bool, str], int]) -> Pieces | None:
    """The answer described by how it follows from the statement's values, if it does."""

    def lookup(value: str, form: str) -> int | None:
        return slots.get((form in _QUOTES, value))

    number = _number(answer)
    if number is not None:
        for m in _EXPRESSION.finditer(statement):
            if _evaluate(m.group()) == number:
                return ("the value of ", *_pieces(m.group(), lookup))
        numbers = [(i, float(v)) for (quoted, v), i in slots.items() if not quoted]
        if len({v for _, v in numbers}) > 1:
            for word, pick in (("largest", max), ("smallest", min)):
                if number == pick(v for _, v in numbers):
                    refs = ", ".join(f"\0{i}" for i, _ in numbers)
                    return _split_refs(f"the {word} of {refs}")
    words = [(i, v) for (quoted, v), i in slots.items() if quoted and len(v) > 1]
    for fold in (False, True):
        for phrase, relation in _WORD_RELATIONS:
            for i, word in words:
                got = relation(word)
                if got == answer or (fold and got.casefold() == answer.casefold()):
                    return _split_refs(phrase.replace("{}", f"\0{i}"))
    return None


def _split_refs(text: str) -> Pieces:
    parts = re.split(r"\0(\d+)", text)
    return tuple(p if k % 2 == 0 else (int(p), "") for k, p in enumerate(parts) if p != "")


def _abstract(task: Task, answer: str) -> _Abstract:
    statement = _EXAMPLE_LINE.sub("", task.prompt).strip()  # sample calls are instance data
    slots: dict[tuple[bool, str], int] = {}
    pieces = _pieces(statement, lambda v, f: slots.setdefault((f in _QUOTES, v), len(slots)))
    if task.kind == "code":
        target = extract_code(answer).strip("\n")
    else:
        target = task.answer if task.answer is not None else answer_candidate(answer)
    derived = None if task.kind == "code" else _derived(statement, target.strip(), slots)
    if derived is None:
        derived = _pieces(target, lambda v, f: slots.get((f in _QUOTES, v)))
        if task.kind != "code" and _number(target) is not None and len(derived) == 1:
            derived = ("the computed result",) if isinstance(derived[0], str) else derived
    values = tuple(v for (_, v) in slots)
    kinds = tuple(_kind(q, v) for (q, v) in slots)
    return _Abstract(task, target, pieces, derived, values, kinds)


def _render(pieces: Pieces, names: dict[int, str], values: tuple[str, ...]) -> str:
    """Text with named slots as placeholders and the others as their (constant) values."""
    out = []
    for piece in pieces:
        index, form = (None, "") if isinstance(piece, str) else piece
        name = names.get(index) if index is not None else None
        if index is None:
            out.append(piece)
        elif form == "ord":
            out.append(f"{name}-th" if name else _ORDINALS[int(values[index]) - 2])
        else:
            quote = form if form in _QUOTES else ""
            out.append(f"{quote}{name or values[index]}{quote}")
    return "".join(out)


def _placeholders(group: list[_Abstract]) -> dict[int, str]:
    """Names for the slots whose value varies in the group (all of them for one example)."""
    first, counts, names = group[0], dict.fromkeys(("NUM", "CH", "WORD", "S"), 0), {}
    for i, kind in enumerate(first.kinds):
        if len(group) == 1 or any(a.values[i] != first.values[i] for a in group):
            counts[kind] = n = counts[kind] + 1
            letter = chr(64 + n) if n <= 26 else f"N{n}"
            names[i] = f"<{letter}>" if kind == "NUM" else f"<{kind}{n if n > 1 else ''}>"
    return names


def _title(statement: str) -> str:
    first = re.split(r"(?<=[.?!])\s|\n", statement, maxsplit=1)[0].strip()
    first = _WRITE_A_FUNCTION.sub("", first)
    return first if len(first) <= 100 else first[:97] + "..."


def _template_workflow(scope: str, group: list[_Abstract], round: int, origin: str) -> Workflow:
    first = group[0]
    names = _placeholders(group)
    statement = _render(first.statement, names, first.values)
    answer = _render(first.answer, names, first.values)
    if first.task.kind == "code":
        body = f"Task: {statement}\nSolution:\n```python\n{answer.strip()}\n```"
    else:
        body = f"Task: {statement}\nAnswer: {answer}"
    return Workflow(
        scope=scope,
        title=_title(statement),
        text=body + _fill_in(names),
        source_task_ids=list(dict.fromkeys(a.task.id for a in group)),
        round=round,
        origin=origin,
        inducer="template",
    )


def _fill_in(names: dict[int, str]) -> str:
    return f"\nFill in {', '.join(names.values())} from your task." if names else ""


def induce_workflows(
    tasks: Sequence[Task],
    answers: Sequence[str],
    *,
    teacher: ChatModel | None = None,
    round: int = 0,
    origin: str = "online",
    per_scope: int = 1,
    min_examples: int = 1,
) -> list[Workflow]:
    """Workflows from successful ``(task, verified answer)`` pairs, grouped by scope.

    Args:
        tasks, answers: solved tasks and their verified answers (or references), aligned.
        teacher: None for the template inducer; a model to ask for the steps otherwise.
        round, origin: lineage; ``origin`` is ``"offline"`` (training references) or ``"online"``.
        per_scope: at most this many workflows per scope (one per distinct abstract form,
            the most shared first).
        min_examples: scopes with fewer distinct solved tasks get no workflow.
    """
    if len(tasks) != len(answers):
        raise ValueError(f"got {len(tasks)} tasks but {len(answers)} answers")
    if origin not in ("offline", "online"):
        raise ValueError(f"origin must be 'offline' or 'online', got {origin!r}")
    if per_scope < 1 or min_examples < 1:
        raise ValueError(f"per_scope={per_scope!r}, min_examples={min_examples!r}: need >= 1")
    scopes: dict[str, dict[tuple[str, str], _Abstract]] = {}
    for task, answer in zip(tasks, answers, strict=True):
        if answer and answer.strip():
            found = scopes.setdefault(workflow_scope(task), {})
            if (task.id, answer) not in found:
                found[task.id, answer] = _abstract(task, answer)
    chosen: list[tuple[str, list[_Abstract]]] = []
    for scope, found in scopes.items():
        if len({task_id for task_id, _ in found}) < min_examples:
            continue
        groups: dict[tuple, list[_Abstract]] = {}
        for item in found.values():
            groups.setdefault(item.key, []).append(item)
        ranked = sorted(groups.values(), key=len, reverse=True)  # stable: ties keep first seen
        chosen += [(scope, group) for group in ranked[:per_scope]]
    flows = [_template_workflow(scope, group, round, origin) for scope, group in chosen]
    if teacher is not None and chosen:
        flows = _ask_teacher(teacher, chosen, flows)
    return list({w.id: w for w in flows}.values())


def _ask_teacher(
    teacher: ChatModel, chosen: list[tuple[str, list[_Abstract]]], fallback: list[Workflow]
) -> list[Workflow]:
    template = PromptFile.load(PROMPT_PATH)
    prompts = []
    for (scope, group), flow in zip(chosen, fallback, strict=True):
        shown = "\n\n".join(
            f"Task: {a.task.prompt}\nVerified answer:\n{_clip(a.target)}"
            for a in group[:SHOWN_EXAMPLES]
        )
        prompts.append(
            template.render(None, scope=scope, statement=_statement(flow), examples=shown)
        )
    try:
        rows = teacher.generate(prompts, temperature=0.0, max_tokens=TEACHER_MAX_TOKENS, seed=0)
    except ModelError:
        return fallback  # a teacher outage leaves the template workflows
    out = []
    for k, ((_, group), flow) in enumerate(zip(chosen, fallback, strict=True)):
        reply = rows[k][0].text if k < len(rows) and rows[k] else ""
        out.append(_from_teacher(reply, group, flow) or flow)
    return out


def _statement(flow: Workflow) -> str:
    return flow.text.split("\n", 1)[0].removeprefix("Task: ")


def _from_teacher(reply: str, group: list[_Abstract], flow: Workflow) -> Workflow | None:
    """The teacher's workflow, or None when the reply is not usable JSON or leaks values."""
    reply = reply[:PARSE_CHARS]  # a longer reply is not a workflow (and JSON cut here fails)
    start, end = reply.find("{"), reply.rfind("}")
    try:
        data = json.loads(reply[start : end + 1]) if 0 <= start < end else None
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("title"), str) or not storable(data):
        return None
    steps = data.get("steps", data.get("text"))
    if isinstance(steps, list) and steps and all(isinstance(s, str) and s.strip() for s in steps):
        body = "\n".join(f"{i}. {s.strip()}" for i, s in enumerate(steps, 1))
    elif isinstance(steps, str) and steps.strip():
        body = steps.strip()
    else:
        return None
    title = data["title"].strip().split("\n")[0]
    names = _placeholders(group)
    varying = {a.values[i] for a in group for i in names}
    if not title or any(_mentions(title + body, v) for v in varying if len(v) > 1):
        return None  # one-character values ("1", "x") are too common to call a leak
    text = f"Task: {_statement(flow)}\nSteps:\n{body}{_fill_in(names)}"
    return flow.model_copy(update={"title": title, "text": text, "inducer": "teacher"})


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def _clip(text: str, limit: int = SHOWN_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


GUIDE = "A routine that solved tasks like this one (use the values of your task):"


def workflow_prompt(task: Task, workflows: Sequence[Workflow]) -> list[dict[str, str]]:
    """The task as one user message, the workflows first as guidance.

    One message rather than earlier turns: a workflow is not an answer, and an earlier
    assistant turn holding placeholders invites a small student to echo them; every
    extra turn also costs chat-template tokens in a small context. Routine first, task
    last keeps the task's answer-format instruction right before the answer. With no
    workflows the prompt is the plain task (the control arm).
    """
    if not workflows:
        return [{"role": "user", "content": task.prompt}]
    guide = "\n\n".join(_clip(w.text) for w in workflows)
    return [{"role": "user", "content": f"{GUIDE}\n{guide}\n\nNow solve this task:\n{task.prompt}"}]
