"""Verifiers: pure functions ``(task, completion) -> Verdict``.

An answer task (``task.kind == "answer"``) is graded by how its ``metadata["match"]``
says: ``"number"`` (tolerant numeric match on the extracted final answer; the
default when the reference parses as a number), ``"choice"`` (the reply must pick
exactly one of ``metadata["choices"]``) or ``"exact"`` (normalized string match,
``metadata["case_sensitive"]`` defaults to true).

A code task is graded by running a program built with ``build_program`` in the
sandbox; ``code_verdict`` turns the sandbox result into a verdict. ``Grader``
puts it together for batches: code tasks run in parallel on a sandbox pool,
and users can plug in their own callables by name (``metadata["verifier"]``).
"""

from __future__ import annotations

import ast
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from selfimprove.tasks.extract import (
    answer_candidate,
    extract_choice,
    extract_code,
    extract_number,
    normalize_text,
    parse_number,
)
from selfimprove.types import Task, Verdict

if TYPE_CHECKING:
    from selfimprove.sandbox import ExecResult, SandboxPool

Verifier = Callable[[Task, str], Verdict]

_REL_TOL = 1e-6
_ABS_TOL = 1e-6


def check_number(task: Task, completion: str) -> Verdict:
    """The final number in the reply equals ``task.answer`` (within a small tolerance)."""
    expected = parse_number(task.answer or "")
    if expected is None:
        return Verdict.fail(f"task {task.id!r} has no numeric reference answer: {task.answer!r}")
    value, note = extract_number(completion)
    if value is None:
        return Verdict.fail(note)
    if math.isclose(value, expected, rel_tol=_REL_TOL, abs_tol=_ABS_TOL):
        return Verdict.ok(f"{_fmt(value)} == {_fmt(expected)} ({note})")
    return Verdict.fail(f"got {_fmt(value)}, expected {_fmt(expected)} ({note})")


def check_choice(task: Task, completion: str) -> Verdict:
    """The reply picks ``task.answer`` from ``metadata["choices"]`` and nothing else."""
    choices = [str(c) for c in task.metadata.get("choices", [])]
    if not choices or task.answer not in choices:
        return Verdict.fail(f"task {task.id!r} needs metadata.choices containing its answer")
    picked, note = extract_choice(completion, choices)
    if picked is None:
        return Verdict.fail(note)
    if normalize_text(picked, case_sensitive=False) == normalize_text(
        task.answer, case_sensitive=False
    ):
        return Verdict.ok(f"picked {picked!r} ({note})")
    return Verdict.fail(f"picked {picked!r}, expected {task.answer!r} ({note})")


def check_exact(task: Task, completion: str) -> Verdict:
    """The final answer equals ``task.answer`` after whitespace/punctuation normalization."""
    if task.answer is None:
        return Verdict.fail(f"task {task.id!r} has no reference answer")
    case = bool(task.metadata.get("case_sensitive", True))
    expected = normalize_text(task.answer, case_sensitive=case)
    for candidate in (answer_candidate(completion), completion):
        if normalize_text(candidate, case_sensitive=case) == expected:
            return Verdict.ok(f"answer {candidate.strip()[:60]!r}")
    shown = answer_candidate(completion)[:60]
    return Verdict.fail(f"got {shown!r}, expected {task.answer!r}")


ANSWER_VERIFIERS: dict[str, Verifier] = {
    "number": check_number,
    "choice": check_choice,
    "exact": check_exact,
}


def answer_match(task: Task) -> str:
    """Which answer verifier a task uses: its ``metadata["match"]`` or a default."""
    match = task.metadata.get("match")
    if match is not None:
        return str(match)
    if task.metadata.get("choices"):
        return "choice"
    return "number" if parse_number(task.answer or "") is not None else "exact"


def check_answer(task: Task, completion: str) -> Verdict:
    """Grade an answer task with the verifier its metadata names."""
    match = answer_match(task)
    verifier = ANSWER_VERIFIERS.get(match)
    if verifier is None:
        return Verdict.fail(
            f"task {task.id!r} has unknown metadata.match {match!r}; "
            f"use one of {sorted(ANSWER_VERIFIERS)}"
        )
    return verifier(task, completion)


STRICT_EQ = "__selfimprove_strict_eq"
_STRICT_EQ_SOURCE = f'''
def {STRICT_EQ}(actual, expected):
    """``actual == expected``, except that an object of a class the program defined
    equals only an object of that class, inside lists, tuples and dicts too."""
    ta, tb = type(actual), type(expected)
    if ta is not tb and "__main__" in (ta.__module__, tb.__module__):
        return False
    if ta is tb and ta in (list, tuple):
        return len(actual) == len(expected) and all(map({STRICT_EQ}, actual, expected))
    if ta is tb is dict:
        return actual.keys() == expected.keys() and all(
            {STRICT_EQ}(actual[k], expected[k]) for k in expected
        )
    return actual == expected
'''


def strict_asserts(tests: str) -> str:
    """``tests`` with each ``assert a == b`` checked by a comparison the answer cannot fake.

    An answer could otherwise pass every such test by returning an object whose
    ``__eq__`` always says yes (a known reward hack). The rewritten assert keeps
    the original statement as its message, so a failure still reads
    "AssertionError: assert f(1) == 2". Tests that do not parse are left as they are.
    """
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError, RecursionError):
        return tests
    rewriter = _StrictAsserts()
    tree = rewriter.visit(tree)
    if not rewriter.changed:
        return tests
    return _STRICT_EQ_SOURCE + "\n" + ast.unparse(ast.fix_missing_locations(tree))


class _StrictAsserts(ast.NodeTransformer):
    changed = False

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test = node.test
        if not (
            isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
        ):
            return node
        call = ast.Call(
            func=ast.Name(id=STRICT_EQ, ctx=ast.Load()),
            args=[test.left, test.comparators[0]],
            keywords=[],
        )
        message = node.msg or ast.Constant(value=f"assert {ast.unparse(test)}")
        self.changed = True
        return ast.copy_location(ast.Assert(test=call, msg=message), node)


def build_program(task: Task, completion: str, *, sentinel: str = "") -> str:
    """The program that tests a code completion (HumanEval convention).

    The completion's code is appended to ``task.prompt`` unless it defines
    ``task.entry_point`` itself (then it stands alone). The tests follow (with
    ``strict_asserts``; the comparison is defined after the answer's code, so the
    answer's module code cannot replace it first), then ``check(entry_point)``
    when the tests define ``check``. ``sentinel``, when given, is printed last so
    that a program which exits early with status 0 does not pass.

    What this does not stop: code written to defeat this harness in particular
    (it runs in the same interpreter, so it can read the sentinel from its own
    code object, or rebind names the tests use). The sandbox contains what a
    program can do to the machine, not what it can do to its own process.
    """
    code = extract_code(completion)
    defines = task.entry_point and re.search(
        rf"^\s*(?:async\s+)?def\s+{re.escape(task.entry_point)}\s*\(", code, re.MULTILINE
    )
    solution = code if defines or not task.entry_point else f"{task.prompt}{code}"
    parts = [solution, strict_asserts(task.tests or "")]
    if task.entry_point and re.search(r"^def\s+check\s*\(", task.tests or "", re.MULTILINE):
        parts.append(f"check({task.entry_point})")
    if sentinel:
        parts.append(f"print({sentinel!r})")
    return "\n\n".join(p.rstrip() for p in parts if p.strip()) + "\n"


def code_verdict(result: ExecResult, sentinel: str = "") -> Verdict:
    """A verdict from the sandbox's result of running ``build_program``'s output."""
    if not result.ok:
        return Verdict.fail(result.reason)
    if sentinel and sentinel not in result.stdout:
        return Verdict.fail("program exited before the tests finished")
    return Verdict.ok("all tests passed")


class Grader:
    """Grades batches of completions; code tasks run in parallel in a sandbox pool.

    Args:
        sandbox: the pool that runs code tasks; a grader without one fails code
            tasks with a clear reason.
        custom: user verifiers by name; a task selects one with
            ``metadata["verifier"] = name``. A custom verifier that raises yields
            a failed verdict naming the exception, never a crash.
    """

    def __init__(
        self, sandbox: SandboxPool | None = None, custom: Mapping[str, Verifier] | None = None
    ) -> None:
        self.sandbox = sandbox
        self.custom = dict(custom or {})

    def grade(self, tasks: Sequence[Task], completions: Sequence[str]) -> list[Verdict]:
        """One verdict per (task, completion), in order."""
        if len(tasks) != len(completions):
            raise ValueError(f"got {len(tasks)} tasks but {len(completions)} completions")
        verdicts: list[Verdict | None] = [None] * len(tasks)
        code_jobs: list[tuple[int, str, str]] = []
        for i, (task, completion) in enumerate(zip(tasks, completions, strict=True)):
            name = task.metadata.get("verifier")
            if name is not None:
                verdicts[i] = self._custom(str(name), task, completion)
            elif task.kind == "code":
                sentinel = f"__selfimprove_done_{secrets.token_hex(8)}__"
                code_jobs.append((i, build_program(task, completion, sentinel=sentinel), sentinel))
            else:
                verdicts[i] = check_answer(task, completion)
        if code_jobs:
            indices, programs, sentinels = zip(*code_jobs, strict=True)
            for i, verdict in zip(indices, self._run_code(programs, sentinels), strict=True):
                verdicts[i] = verdict
        return [v for v in verdicts if v is not None]

    def grade_one(self, task: Task, completion: str) -> Verdict:
        return self.grade([task], [completion])[0]

    def _run_code(self, programs: Sequence[str], sentinels: Sequence[str]) -> list[Verdict]:
        if self.sandbox is None:
            return [Verdict.fail("code task but the grader has no sandbox")] * len(programs)
        results = self.sandbox.map(list(programs))
        return [code_verdict(r, s) for r, s in zip(results, sentinels, strict=True)]

    def _custom(self, name: str, task: Task, completion: str) -> Verdict:
        verifier = self.custom.get(name)
        if verifier is None:
            return Verdict.fail(
                f"task {task.id!r} names verifier {name!r}, which is not registered "
                f"(known: {sorted(self.custom)})"
            )
        try:
            verdict = verifier(task, completion)
        except Exception as exc:  # a user's verifier must not take the loop down
            detail = str(exc)[:300]  # a message quoting a megabyte answer stays readable
            return Verdict.fail(f"verifier {name!r} raised {type(exc).__name__}: {detail}")
        if not isinstance(verdict, Verdict):
            return Verdict.fail(f"verifier {name!r} returned {type(verdict).__name__}, not Verdict")
        return verdict


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
