"""Self-debugging (LeTI, self-debug traces): fix failed answers from the verifier's feedback.

Given tasks, failed answers and their verdicts, the self-debugger shows the model
the task, its answer and what the verifier said (the failing test with the value
the code returned, the error message, or the wrong answer) and asks for a fix.
Fixes are generated for all tasks in one batched ``model.generate`` call per turn
(per generation-settings group) and verified in one batched grade; tasks still
failing go round again, up to ``turns`` times.

    from selfimprove.agents.debug import self_debug
    trajectories = self_debug(model, grader, tasks, failed_texts, verdicts, turns=2)
    for t in trajectories:
        if t.fix:  # SFT: t.fix.messages -> t.fix.completion; DPO: (t.fix.completion, t.failed)
            ...

The conversation comes from ``agents/prompts/self_debug.txt``. Odd model output
(empty, prose, broken code) is just a failed turn: nothing here raises on it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from selfimprove.agents.prompt_file import PromptFile
from selfimprove.eval.evaluate import generate_for_tasks
from selfimprove.models.base import ChatModel
from selfimprove.tasks.verifiers import Grader
from selfimprove.types import Task, Verdict

PROMPT_PATH = Path(__file__).parent / "prompts" / "self_debug.txt"
FEEDBACK_CHARS = 600  # a long traceback would crowd the task out of a small context
_GOT = "__selfimprove_got"
# ", expected 17" / ", expected 'ABC'" in an answer verdict: the answer itself.
_EXPECTED = re.compile(r",\s*expected\s+(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,()]+)")


class DebugPrompt(PromptFile):
    """The self-debug conversation: ``[fix code]`` / ``[fix answer]`` fill ``{fix}``."""

    default_path = PROMPT_PATH
    default_part = "fix"

    @property
    def fix(self) -> dict[str, str]:
        """Task kind -> the ``{fix}`` instruction."""
        return self.parts

    def render(self, task: Task, answer: str, feedback: str) -> list[dict[str, str]]:
        """The chat messages asking to fix ``answer`` to ``task`` given ``feedback``."""
        return super().render(task, answer=answer, feedback=feedback)


class DebugTurn(BaseModel):
    """One fix attempt: the feedback and prompt it answered, the new answer and its verdict."""

    feedback: str
    messages: list[dict[str, str]]
    completion: str
    verdict: Verdict
    finish_reason: str = "stop"


class DebugTrajectory(BaseModel):
    """The self-debugging of one task: the failed answer, then each turn until fixed."""

    task_id: str
    failed: str
    verdict: Verdict
    turns: list[DebugTurn] = Field(default_factory=list)

    @property
    def fix(self) -> DebugTurn | None:
        """The turn that passed, if any."""
        return next((t for t in self.turns if t.verdict.passed), None)

    @property
    def fixed_at(self) -> int | None:
        """Which turn (1-based) fixed the answer."""
        return next((i for i, t in enumerate(self.turns, 1) if t.verdict.passed), None)


def self_debug(
    model: ChatModel,
    grader: Grader,
    tasks: Sequence[Task],
    completions: Sequence[str],
    verdicts: Sequence[Verdict],
    *,
    turns: int = 2,
    temperature: float = 0.0,
    seed: int | None = 0,
    prompt: DebugPrompt | None = None,
    explain: bool = True,
    reveal_answers: bool = False,
) -> list[DebugTrajectory]:
    """Try to fix each failed answer from its verifier feedback, up to ``turns`` times.

    Args:
        model: the model that fixes (usually the student itself).
        grader: verifies each fix, and explains failing code tests (see ``explain``).
        tasks, completions, verdicts: the failed answers, aligned.
        turns: how many fix attempts a task gets at most.
        temperature, seed: sampling; turn ``t`` uses ``seed + t``.
        prompt: the conversation template (default: ``prompts/self_debug.txt``).
        explain: re-run a failing code answer's tests so the feedback says which
            value a failing ``assert f(x) == y`` got (one extra batched grade).
        reveal_answers: keep "expected X" in the feedback on answer tasks. Off by
            default: with the answer in the feedback a "fix" is a copy, which
            teaches nothing and inflates the wrong→right count.

    Returns:
        One trajectory per task, in order.
    """
    if not len(tasks) == len(completions) == len(verdicts):
        raise ValueError(
            f"got {len(tasks)} tasks, {len(completions)} completions, {len(verdicts)} verdicts"
        )
    if turns < 0:
        raise ValueError(f"turns must be >= 0, got {turns!r}")
    prompt = prompt or DebugPrompt.load()
    found = [
        DebugTrajectory(task_id=t.id, failed=c, verdict=v)
        for t, c, v in zip(tasks, completions, verdicts, strict=True)
    ]
    for turn in range(turns):
        active = [i for i, t in enumerate(found) if t.fix is None]
        if not active:
            break
        last = [found[i].turns[-1] if found[i].turns else None for i in active]
        answers = [
            t.completion if t else found[i].failed for i, t in zip(active, last, strict=True)
        ]
        failures = [t.verdict if t else found[i].verdict for i, t in zip(active, last, strict=True)]
        batch = [tasks[i] for i in active]
        feedback = feedback_for(
            batch, answers, failures, grader if explain else None, reveal_answers=reveal_answers
        )
        asks = [prompt.render(t, a, f) for t, a, f in zip(batch, answers, feedback, strict=True)]
        texts, finishes = _generate(
            model, batch, asks, temperature, None if seed is None else seed + turn
        )
        new_verdicts = grader.grade(batch, texts)
        for j, i in enumerate(active):
            found[i].turns.append(
                DebugTurn(
                    feedback=feedback[j],
                    messages=asks[j],
                    completion=texts[j],
                    verdict=new_verdicts[j],
                    finish_reason=finishes[j],
                )
            )
    return found


def debug_counts(trajectories: Sequence[DebugTrajectory]) -> dict[str, int]:
    """Self-correction counts: tasks debugged, fix attempts generated, wrong→right, wrong→wrong,
    fixes per turn."""
    counts = {
        "debugged": len(trajectories),
        "generated": sum(len(t.turns) for t in trajectories),
        "wrong_to_right": sum(t.fix is not None for t in trajectories),
        "wrong_to_wrong": sum(t.fix is None for t in trajectories),
    }
    for t in trajectories:
        if t.fixed_at is not None:
            key = f"fixed_on_turn_{t.fixed_at}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def feedback_for(
    tasks: Sequence[Task],
    answers: Sequence[str],
    verdicts: Sequence[Verdict],
    grader: Grader | None,
    *,
    reveal_answers: bool = False,
) -> list[str]:
    """What to tell the model about each failed answer: the verifier's reason, made concrete.

    For a code task whose failing test is a plain ``assert f(x) == y``, the tests are
    re-run (one batch) in a form that reports the value ``f(x)`` returned, so the
    feedback reads "f(x) returned 5, expected 6". Anything odd keeps the plain reason.
    On answer tasks the expected answer is cut out unless ``reveal_answers``.
    """
    reasons = [
        v.reason if t.kind == "code" or reveal_answers else _EXPECTED.sub("", v.reason)
        for t, v in zip(tasks, verdicts, strict=True)
    ]
    jobs = []
    for i, (task, verdict) in enumerate(zip(tasks, verdicts, strict=True)):
        tests = _explaining_tests(task.tests) if task.kind == "code" and grader else None
        if tests is not None and "AssertionError" in verdict.reason:
            jobs.append((i, task.model_copy(update={"tests": tests})))
    if jobs and grader is not None:
        explained = grader.grade([t for _, t in jobs], [answers[i] for i, _ in jobs])
        for (i, _), verdict in zip(jobs, explained, strict=True):
            if not verdict.passed and "returned" in verdict.reason:
                reasons[i] = verdict.reason
    return [_clip(r) for r in reasons]


def _explaining_tests(tests: str | None) -> str | None:
    """``tests`` with every ``assert a == b`` reporting the value ``a`` had, or None."""
    try:
        tree = ast.parse(tests or "")
    except (SyntaxError, ValueError, RecursionError):
        return None
    explainer = _Explainer()
    tree = explainer.visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree)) if explainer.changed else None


class _Explainer(ast.NodeTransformer):
    """Rewrites ``assert a == b`` into ``assert (got := a) == b, "a returned <got>, expected b"``."""

    changed = False

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        test = node.test
        if not (
            node.msg is None
            and isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)
        ):
            return node
        left, right = ast.unparse(test.left), ast.unparse(test.comparators[0])
        message = f"{left + ' returned '!r} + repr({_GOT})[:200] + {', expected ' + right!r}"
        new = ast.parse(f"assert ({_GOT} := ({left})) == ({right}), {message}").body[0]
        self.changed = True
        return ast.copy_location(new, node)


def _generate(
    model: ChatModel,
    tasks: list[Task],
    prompts: list[list[dict[str, str]]],
    temperature: float,
    seed: int | None,
) -> tuple[list[str], list[str]]:
    """One fix per prompt, one ``generate`` call per generation-settings group."""
    rows = generate_for_tasks(model, tasks, prompts, temperature=temperature, seed=seed)
    texts, finishes = [""] * len(tasks), ["error"] * len(tasks)
    for i, row in enumerate(rows):
        if row:  # a backend returning nothing for a prompt is a failed turn, not a crash
            texts[i], finishes[i] = row[0].text, row[0].finish_reason
    return texts, finishes


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= FEEDBACK_CHARS else text[: FEEDBACK_CHARS - 3] + "..."
