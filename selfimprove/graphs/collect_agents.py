"""The collect graph's optional agent steps: critique, self-review, self-edit, workflow memory.

Each function takes the graph's dependencies and state and returns a partial state
update, like the nodes in ``collect.py`` (which wires them in behind the
``CollectSettings`` switches). They are kept apart so the graph file stays a map.

- ``retrieve_worked``: similar verified positives of earlier rounds as worked examples.
- ``critique``: the critic (teacher, else the student) reviews a seeded sample of
  graded answers; its agreement with the verifier goes into the counts.
- ``self_review``: a feedback-free "check your answer" turn on a sample of right and
  wrong answers, counting right→wrong and wrong→right.
- ``self_edit``: the LLM self-edit injection operator on the round's correct answers.
- ``recall_workflows`` / ``induce_workflows``: Agent Workflow Memory: the best
  workflow for each task goes into half of its sampling prompts (the other half is
  the control arm), new workflows are induced from the round's successes, and
  workflows whose use does not raise success are retired.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from selfimprove.agents.critic import critic_counts, critique
from selfimprove.agents.inject import InjectionResult
from selfimprove.agents.review import review_counts, self_review
from selfimprove.agents.self_edit import self_edit_errors
from selfimprove.agents.workflows import induce_workflows, workflow_prompt
from selfimprove.memory.workflows import WorkflowStats, unhelpful
from selfimprove.models.base import Prompt
from selfimprove.types import Example, Task, Verdict

if TYPE_CHECKING:
    from selfimprove.graphs.collect import CollectDeps


def attempt_id(task: Task, text: str, round: int, agent: str) -> str:
    """The id ``collect_examples.task_examples`` gives the stored attempt of a sampled ``text``."""
    base = Example(kind="attempt", prompt=task.prompt, task_id=task.id, round=round, agent=agent)
    return base.model_copy(update={"completion": text}).id


def graded_answers(
    tasks: Sequence[Task], samples: Mapping[str, list[dict[str, Any]]]
) -> list[tuple[Task, dict[str, Any]]]:
    """Every distinct non-empty graded answer of the batch, as ``(task, sample)``."""
    out, seen = [], set()
    for task in tasks:
        for sample in samples.get(task.id, []):
            key = (task.id, sample["text"])
            if sample["text"].strip() and key not in seen:
                seen.add(key)
                out.append((task, sample))
    return out


def _verdict(sample: Mapping[str, Any]) -> Verdict:
    return Verdict.ok() if sample["passed"] else Verdict.fail(sample["reason"])


def critique_step(deps: CollectDeps, tasks: list[Task], samples: Mapping[str, list]) -> dict:
    """Critique up to ``critic_samples`` graded answers; return critiques and agreement counts."""
    s = deps.settings
    pool = graded_answers(tasks, samples)
    chosen = random.Random(f"{s.seed}:{s.round}:critic").sample(
        pool, min(s.critic_samples, len(pool))
    )
    model = deps.teacher or deps.model
    critiques = critique(model, [t for t, _ in chosen], [x["text"] for _, x in chosen], seed=s.seed)
    verdicts = [_verdict(x) for _, x in chosen]
    counts = {f"critic/{k}": v for k, v in critic_counts(critiques, verdicts).items()}
    found = [
        {
            **c.model_dump(),
            "says_wrong": c.says_wrong,
            "passed": x["passed"],
            "critic_model": model.name,
        }
        for c, (_, x) in zip(critiques, chosen, strict=True)
    ]
    return {"critiques": found, "counts": counts}


def critique_examples(task: Task, critiques: Sequence[Mapping[str, Any]], s: Any) -> list[Example]:
    """Stored critiques of a task's answers: advice with lineage, never training data."""
    out = []
    for c in critiques:
        says_wrong = c["says_wrong"]  # the verdict, or "correct" listing a major error
        agrees = None if says_wrong is None else says_wrong != c["passed"]
        out.append(
            Example(
                kind="critique",
                prompt=task.prompt,
                completion=c["raw"],
                task_id=task.id,
                round=s.round,
                agent="critic",
                model=c["critic_model"],
                parent_id=attempt_id(task, c["answer"], s.round, s.agent),
                passed=agrees,  # did the critic agree with the executable verifier?
                reason=c["parse_error"] or "",
                metadata={
                    "suite": task.suite,
                    "split": task.split,
                    "verdict": c["verdict"] or "unparsed",
                    "says_wrong": "unparsed" if says_wrong is None else str(says_wrong).lower(),
                    "errors": len(c["errors"]),
                    "verifier_passed": c["passed"],
                },
            )
        )
    return out


def review_step(deps: CollectDeps, tasks: list[Task], samples: Mapping[str, list]) -> dict:
    """Self-review up to ``self_review`` answers, half right and half wrong where possible."""
    s = deps.settings
    pool = graded_answers(tasks, samples)
    rng = random.Random(f"{s.seed}:{s.round}:review")
    right = [p for p in pool if p[1]["passed"]]
    wrong = [p for p in pool if not p[1]["passed"]]
    half = s.self_review // 2
    take_right = min(len(right), max(half, s.self_review - len(wrong)))
    chosen = rng.sample(right, take_right)
    chosen += rng.sample(wrong, min(len(wrong), s.self_review - take_right))
    verdicts = [_verdict(x) for _, x in chosen]
    reviews = self_review(
        deps.model,
        deps.grader,
        [t for t, _ in chosen],
        [x["text"] for _, x in chosen],
        verdicts,
        seed=s.seed,
    )
    counts = {f"review/{k}": v for k, v in review_counts(reviews).items()}
    return {"reviews": [r.model_dump() for r in reviews], "counts": counts}


def review_examples(task: Task, reviews: Sequence[Mapping[str, Any]], s: Any, model: str) -> list:
    """Self-review turns as attempts (``agent="self_review"``) whose parent is the answer reviewed."""
    return [
        Example(
            kind="attempt",
            prompt=task.prompt,
            completion=r["after"],
            task_id=task.id,
            round=s.round,
            agent="self_review",
            model=model,
            parent_id=attempt_id(task, r["before"], s.round, s.agent),
            passed=r["after_passed"],
            reason=r["after_reason"],
            metadata={
                "suite": task.suite,
                "split": task.split,
                "before_passed": r["before_passed"],
            },
        )
        for r in reviews
    ]


def self_edit_step(deps: CollectDeps, sources: Sequence[tuple[Task, str]]) -> list[InjectionResult]:
    """The LLM self-edit operator on correct answers (the teacher edits when there is one)."""
    model = deps.teacher or deps.model
    tasks, texts = [t for t, _ in sources], [x for _, x in sources]
    return self_edit_errors(model, tasks, texts, deps.grader, seed=deps.settings.seed)


def recall_workflows(deps: CollectDeps, tasks: Sequence[Task]) -> dict:
    """The best workflow for each task (if any) and the prompt that carries it."""
    prompts, ids = {}, {}
    recalled = deps.workflows.retrieve_many(tasks, k=1) if deps.workflows is not None else []
    for task, hits in zip(tasks, recalled, strict=True):
        if hits:
            workflow = hits[0][0]
            prompts[task.id] = workflow_prompt(task, [workflow])
            ids[task.id] = workflow.id
    return {"workflow_prompts": prompts, "workflows": ids, "counts": {"workflows/used": len(ids)}}


def round_workflow_stats(
    workflows: Mapping[str, str], samples: Mapping[str, list[dict[str, Any]]]
) -> dict[str, WorkflowStats]:
    """Per workflow, this round's with-arm and control-arm samples and passes (every sample)."""
    found: dict[str, dict[str, int]] = {}
    for task_id, workflow_id in workflows.items():
        row = found.setdefault(workflow_id, dict.fromkeys(WorkflowStats.model_fields, 0))
        for sample in samples.get(task_id, []):
            prefix = "" if sample.get("arm") == "with" else "control_"
            row[f"{prefix}uses"] += 1
            row[f"{prefix}successes"] += bool(sample.get("passed"))
    return {k: WorkflowStats(**v) for k, v in found.items()}


def induce_step(deps: CollectDeps, pairs: Sequence[tuple[Task, str]], state: Mapping) -> dict:
    """Induce workflows from the round's successes, record usage, retire unhelpful ones."""
    s, memory = deps.settings, deps.workflows
    assert memory is not None  # the router only comes here with a memory
    induced = induce_workflows(
        [t for t, _ in pairs], [x for _, x in pairs], teacher=deps.teacher, round=s.round
    )
    new = memory.add(induced)
    memory.record_round(s.round, round_workflow_stats(state.get("workflows", {}), state["samples"]))
    retire = [i for i in unhelpful(memory.stats(), min_uses=s.workflow_min_uses)]
    retired = memory.retire(retire, round=s.round, reason="its use did not raise success")
    counts = {"workflows/induced": len(induced), "workflows/new": new, "workflows/retired": retired}
    return {"counts": counts}


def retrieve_worked(deps: CollectDeps, tasks: Sequence[Task]) -> dict:
    """Up to ``retrieve_k`` similar verified positives of earlier rounds per task, as worked
    examples in its prompt (RADA-style retrieval)."""
    s = deps.settings
    prompts, retrieved = {}, {}
    for task in tasks:
        hits = deps.store.search(task.prompt, k=s.retrieve_k, where=_worked_where(task, s.round))
        shots = [h.example for h in hits if h.score >= s.retrieve_min_score]
        prompts[task.id] = worked_prompt(task, shots)
        retrieved[task.id] = [e.id for e in shots]
    used = sum(len(ids) for ids in retrieved.values())
    return {"prompts": prompts, "retrieved": retrieved, "counts": {"retrieved": used}}


def worked_prompt(task: Task, examples: Sequence[Example]) -> Prompt:
    """The task as a chat whose earlier turns are solved examples, the closest last."""
    messages: list[dict[str, str]] = []
    for example in reversed(examples):
        answer = example.completion
        if answer.count("```") % 2:  # generation stops before a closing fence: close it
            answer += "\n```"
        messages += [
            {"role": "user", "content": example.prompt},
            {"role": "assistant", "content": answer},
        ]
    return [*messages, {"role": "user", "content": task.prompt}]


def _worked_where(task: Task, round: int) -> dict[str, Any]:
    """Verified positives of earlier rounds, other tasks, never held-out ones."""
    return {
        "$and": [
            {"kind": "positive"},
            {"round": {"$lt": round}},
            {"task_id": {"$ne": task.id}},
            {"split": {"$ne": "heldout"}},
        ]
    }
