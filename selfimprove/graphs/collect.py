"""The collect graph: one round's training data from the student's own attempts.

    graph = build_collect_graph(CollectDeps(model, grader, store, CollectSettings(round=1)))
    out = graph.invoke(collect_input(tasks))      # out["counts"]: examples by kind, yields ...
    counts = collect(deps, tasks)                 # the same, in one call

For a batch of tasks: ``retrieve`` worked examples from earlier rounds and/or
recall a workflow per task (optional) → ``generate`` k answers per task (one
batched call per generation-settings group; a task with a workflow gets it in
half of its samples) → ``verify`` them (one batched grade) → then, each when
switched on and given work (``AFTER_VERIFY``): ``critique`` a sample of answers,
``self_review`` a sample, ``self_debug`` tasks with no passing answer, ``inject``
errors into verified answers (operators and LLM self-edit) → ``store``
everything with lineage in one ``store.add`` → ``induce`` workflows from the
successes and retire unhelpful ones. The optional steps live in ``collect_agents``;
models are read through ``models.bounded`` (a completion longer than its
``max_tokens`` allows is cut, a lone surrogate replaced), so odd output costs little.
What is stored:

- every answer as an ``attempt`` (passed, reason); every distinct correct answer
  as a ``positive`` and every distinct wrong one as a ``negative``, all with the
  task's plain prompt so that training matches evaluation;
- DPO ``pair`` s: (correct, sampled wrong) with ``error_type="sampled"``;
  (correct, injected error) with ``error_type=<operator>``, ``agent="inject"``;
  (fixed, failed) with ``error_type="self_debug"``; a fix is also a positive with
  ``agent="self_debug"`` (twice: plain, and with its feedback in context);
- critiques (``kind="critique"``) and self-review turns (attempts with
  ``agent="self_review"``), each under the attempt it judged.

State holds plain dicts only, so any LangGraph checkpointer can persist it
(``build_collect_graph(deps, checkpointer=SqliteSaver(conn))``), and example ids
are content hashes, so re-running a round adds nothing new to the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfimprove.agents.debug import DebugTrajectory, debug_counts, self_debug
from selfimprove.agents.inject import OPERATORS, InjectionResult, inject_errors_batch, yields
from selfimprove.eval.evaluate import generate_for_tasks
from selfimprove.events import emit
from selfimprove.graphs.collect_agents import (
    critique_examples,
    critique_step,
    induce_step,
    recall_workflows,
    retrieve_worked,
    review_examples,
    review_step,
    self_edit_step,
)
from selfimprove.graphs.collect_examples import task_examples
from selfimprove.memory.base import ExampleStore, unique_by_id
from selfimprove.memory.workflows import WorkflowMemory
from selfimprove.models.base import ChatModel
from selfimprove.models.bounded import bounded
from selfimprove.progress import progress_bar, spinner
from selfimprove.tasks.verifiers import Grader
from selfimprove.types import Example, Task, Verdict


class CollectSettings(BaseModel):
    """How one round collects data.

    Attributes:
        samples_per_task: answers sampled per task (k).
        temperature, seed: sampling; the seed also fixes which errors are injected.
        self_debug, debug_turns: fix tasks with no correct answer from the
            verifier's feedback, up to this many turns.
        inject_errors, injections_per_answer, operators: plant verified errors in
            correct answers (``operators=None``: every operator fitting the task).
        retrieve_k, retrieve_min_score: put up to k similar positives from earlier
            rounds into the prompt as worked examples (0 turns retrieval off).
        self_edit: also plant errors with the LLM self-edit operator.
        self_review: answers sent through a feedback-free self-review (0: off).
        critic, critic_samples: critique this many graded answers and count the
            critic's agreement with the verifier.
        workflows, workflow_min_uses: use the workflow memory (``CollectDeps.workflows``):
            recall into half the samples, induce from successes, retire the unhelpful.
        round, agent, model: lineage of the stored examples (``model=""``: the
            model's own name).
        show_progress: draw a progress bar while generating.
    """

    model_config = ConfigDict(extra="forbid")

    samples_per_task: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.8, ge=0.0)
    seed: int = 0
    self_debug: bool = True
    debug_turns: int = Field(default=2, ge=0)
    inject_errors: bool = True
    injections_per_answer: int = Field(default=2, ge=0)
    operators: list[str] | None = None
    retrieve_k: int = Field(default=0, ge=0)
    retrieve_min_score: float = Field(default=0.0, ge=-1.0, le=1.0)
    self_edit: bool = False
    self_review: int = Field(default=0, ge=0)
    critic: bool = False
    critic_samples: int = Field(default=32, ge=1)
    workflows: bool = False
    workflow_min_uses: int = Field(default=8, ge=1)
    round: int = Field(default=0, ge=0)
    agent: str = "student"
    model: str = ""
    show_progress: bool = False

    @field_validator("operators")
    @classmethod
    def _known_operators(cls, names: list[str] | None) -> list[str] | None:
        unknown = [n for n in names or [] if n not in OPERATORS]
        if unknown:
            raise ValueError(f"unknown operators {unknown!r}; choose from {sorted(OPERATORS)}")
        return names


@dataclass
class CollectDeps:
    """What the collect graph needs; everything is injected so tests can swap parts."""

    model: ChatModel
    grader: Grader
    store: ExampleStore
    settings: CollectSettings
    teacher: ChatModel | None = None  # writes critiques and self-edits; None: the student does
    workflows: WorkflowMemory | None = None


def merge(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: later keys win, so re-running a node overwrites its own entries."""
    return {**(old or {}), **(new or {})}


class CollectInput(TypedDict):
    tasks: list[dict[str, Any]]  # Task.model_dump() of each task in the batch


class CollectOutput(TypedDict):
    counts: dict[str, int]


class CollectState(TypedDict, total=False):
    tasks: list[dict[str, Any]]
    prompts: Annotated[dict[str, Any], merge]  # task id -> prompt with worked examples
    retrieved: Annotated[dict[str, list[str]], merge]  # task id -> ids of those examples
    samples: Annotated[dict[str, list[dict[str, Any]]], merge]  # text, tokens, passed, reason
    debug: Annotated[dict[str, dict[str, Any]], merge]  # task id -> DebugTrajectory dump
    critiques: list[dict[str, Any]]  # Critique dump + passed, critic_model
    reviews: list[dict[str, Any]]  # Review dump
    workflow_prompts: Annotated[dict[str, Any], merge]  # task id -> prompt with its workflow
    workflows: Annotated[dict[str, str], merge]  # task id -> id of the workflow recalled
    injections: Annotated[dict[str, list[dict[str, Any]]], merge]  # Injection dump + source
    counts: Annotated[dict[str, int], merge]


def collect_input(tasks: Sequence[Task]) -> CollectInput:
    """The graph input for a batch of tasks (plain dicts, so checkpoints stay portable)."""
    return {"tasks": [t.model_dump() for t in tasks]}


def build_collect_graph(deps: CollectDeps, *, checkpointer: Any = None):
    """Compile the collect graph over ``deps`` (see the module docstring).

    Args:
        deps: the model, grader, store and settings.
        checkpointer: any LangGraph checkpointer (``SqliteSaver``, ``InMemorySaver``)
            to persist the state of each thread; None keeps nothing.
    """
    nodes = _Nodes(deps)
    graph = StateGraph(CollectState, input_schema=CollectInput, output_schema=CollectOutput)
    graph.add_node("retrieve", nodes.retrieve)
    graph.add_node("generate", nodes.generate)
    graph.add_node("verify", nodes.verify)
    for step in AFTER_VERIFY:
        graph.add_node(step, getattr(nodes, step))
    graph.add_conditional_edges(START, nodes.start)
    graph.add_edge("retrieve", "generate")
    graph.add_edge("generate", "verify")
    for step in ("verify", *AFTER_VERIFY):
        graph.add_conditional_edges(step, nodes.router(step), [*_later(step), END])
    return graph.compile(checkpointer=checkpointer)


AFTER_VERIFY = ("critique", "self_review", "self_debug", "inject", "store", "induce")
"""The steps after ``verify``, in order; each runs only when switched on and given work."""


def _later(step: str) -> tuple[str, ...]:
    return AFTER_VERIFY[AFTER_VERIFY.index(step) + 1 :] if step in AFTER_VERIFY else AFTER_VERIFY


class _Nodes:
    """The graph's nodes (each returns a partial state update) and its pure routers."""

    def __init__(self, deps: CollectDeps) -> None:
        # every model text this graph grades or stores is cut to size and encodable
        self.deps = replace(deps, model=bounded(deps.model), teacher=bounded(deps.teacher))
        self.s = deps.settings

    def retrieve(self, state: CollectState) -> CollectState:
        update: CollectState = {}
        if self.s.workflows and self.deps.workflows is not None:
            update = recall_workflows(self.deps, _tasks(state))
        if self.s.retrieve_k == 0:
            return update
        worked = retrieve_worked(self.deps, _tasks(state))
        return update | worked | {"counts": update.get("counts", {}) | worked["counts"]}

    def generate(self, state: CollectState) -> CollectState:
        """k samples per task; a task with a recalled workflow gets it in half of them."""
        tasks, prompts = _tasks(state), state.get("prompts", {})
        recalled, with_workflow = state.get("workflows", {}), state.get("workflow_prompts", {})
        k = self.s.samples_per_task
        k_with = (k + 1) // 2  # the rest are the control arm (none when k == 1)
        plain = [t for t in tasks if t.id not in recalled]
        armed = [t for t in tasks if t.id in recalled]
        jobs = [
            (plain, [prompts.get(t.id, t.prompt) for t in plain], k, None),
            (armed, [prompts.get(t.id, t.prompt) for t in armed], k - k_with, "control"),
            (armed, [with_workflow[t.id] for t in armed], k_with, "with"),
        ]
        jobs = [job for job in jobs if job[0] and job[2] > 0]
        samples: dict[str, list[dict[str, Any]]] = {t.id: [] for t in tasks}
        total = sum(len(job[0]) for job in jobs)
        with progress_bar("generating", total, enabled=self.s.show_progress) as advance:
            for batch, batch_prompts, n, arm in jobs:
                rows = generate_for_tasks(
                    self.deps.model,
                    batch,
                    batch_prompts,
                    n=n,
                    temperature=self.s.temperature,
                    seed=self.s.seed,
                    progress=advance,
                )
                for task, row in zip(batch, rows, strict=True):
                    extra = {"workflow": recalled[task.id], "arm": arm} if arm else {}
                    samples[task.id] += [c.model_dump() | extra for c in row]
        return {"samples": samples, "counts": {"samples": sum(map(len, samples.values()))}}

    def verify(self, state: CollectState) -> CollectState:
        tasks, samples = _tasks(state), state["samples"]
        flat = [(t, sample) for t in tasks for sample in samples.get(t.id, [])]
        with progress_bar("verifying", len(flat), enabled=self.s.show_progress) as advance:
            verdicts = self.deps.grader.grade([t for t, _ in flat], [x["text"] for _, x in flat])
            advance(len(verdicts))
        graded: dict[str, list[dict[str, Any]]] = {t.id: [] for t in tasks}
        for (task, sample), verdict in zip(flat, verdicts, strict=True):
            graded[task.id].append({**sample, "passed": verdict.passed, "reason": verdict.reason})
        solved = sum(any(x["passed"] for x in row) for row in graded.values())
        passed = sum(v.passed for v in verdicts)
        emit("batch_verified", round=state.get("round"), passed=passed, total=len(verdicts))
        # A group (a task's samples, 2 or more) is "mixed" when some pass and some fail:
        # the contrast rejection sampling and DPO learn from (health.py watches the share).
        groups = [{x["passed"] for x in row} for row in graded.values() if len(row) > 1]
        counts = {
            "samples_passed": passed,
            "tasks_solved": solved,
            "groups": len(groups),
            "groups_mixed": sum(len(outcomes) == 2 for outcomes in groups),
        }
        return {"samples": graded, "counts": counts}

    def self_debug(self, state: CollectState) -> CollectState:
        # debug one failed answer per task; an empty one gives the model nothing to fix
        failed = [
            (t, next((x for x in row if x["text"].strip()), row[0])) for t, row in _unsolved(state)
        ]
        label = f"self-debugging {len(failed)} failed tasks"
        with spinner(label, enabled=self.s.show_progress):
            trajectories = self_debug(
                self.deps.model,
                self.deps.grader,
                [t for t, _ in failed],
                [x["text"] for _, x in failed],
                [Verdict.fail(x["reason"]) for _, x in failed],
                turns=self.s.debug_turns,
                temperature=self.s.temperature,
                seed=self.s.seed,
            )
        counts = {f"self_debug/{k}": v for k, v in debug_counts(trajectories).items()}
        return {"debug": {t.task_id: t.model_dump() for t in trajectories}, "counts": counts}

    def critique(self, state: CollectState) -> CollectState:
        label = f"critiquing {self.s.critic_samples} answers"
        with spinner(label, enabled=self.s.show_progress):
            return critique_step(self.deps, _tasks(state), state["samples"])

    def self_review(self, state: CollectState) -> CollectState:
        label = f"self-reviewing {self.s.self_review} answers"
        with spinner(label, enabled=self.s.show_progress):
            return review_step(self.deps, _tasks(state), state["samples"])

    def inject(self, state: CollectState) -> CollectState:
        sources = [(task, text) for task in _tasks(state) for text in _correct(state, task)]
        results: list[tuple[tuple[Task, str], InjectionResult]] = []
        label = f"injecting errors into {len(sources)} correct answers"
        with spinner(label, enabled=self.s.show_progress):
            if self.s.inject_errors and self.s.injections_per_answer > 0:
                programmatic = inject_errors_batch(
                    [t for t, _ in sources],
                    [text for _, text in sources],
                    self.deps.grader,
                    operators=self.s.operators,
                    per_answer=self.s.injections_per_answer,
                    seed=self.s.seed,
                )
                results += zip(sources, programmatic, strict=True)
            if self.s.self_edit:
                results += zip(sources, self_edit_step(self.deps, sources), strict=True)
        found: dict[str, list[dict[str, Any]]] = {}
        for (task, text), result in results:
            found.setdefault(task.id, []).extend(
                {**i.model_dump(), "source": text} for i in result.injections
            )
        counts = {"inject/kept": sum(len(r.injections) for _, r in results)}
        for name, (tried, failing) in yields([r for _, r in results]).items():
            counts |= {f"inject/{name}/tried": tried, f"inject/{name}/failing": failing}
        return {"injections": found, "counts": counts}

    def store(self, state: CollectState) -> CollectState:
        model = self.s.model or self.deps.model.name
        examples = [e for t in _tasks(state) for e in _examples(t, state, self.s, model)]
        critiques, reviews = (
            _by_task(state.get("critiques", [])),
            _by_task(state.get("reviews", [])),
        )
        for task in _tasks(state):
            examples += critique_examples(task, critiques.get(task.id, []), self.s)
            examples += review_examples(task, reviews.get(task.id, []), self.s, model)
        unique = unique_by_id(examples).values()
        counts = Counter(e.kind for e in unique)
        counts.update(f"pair/{_pair_type(e)}" for e in unique if e.kind == "pair")
        fixes = [e for e in unique if e.kind == "positive" and e.agent == "self_debug"]
        counts["positive/self_debug"] = len(fixes)
        with spinner(f"storing {len(unique)} examples", enabled=self.s.show_progress):
            self.deps.store.add(unique)
        # The round's examples, not what this call added: ids include the round, so the
        # two differ only when a crashed attempt of this round stored some already, and a
        # resumed round must report what an uninterrupted one does.
        counts["new"] = len(unique)
        return {"counts": dict(counts)}

    def induce(self, state: CollectState) -> CollectState:
        pairs = [(t, texts[0]) for t in _tasks(state) if (texts := _correct(state, t))]
        with spinner("inducing workflows", enabled=self.s.show_progress):
            return induce_step(self.deps, pairs, state)

    def start(self, state: CollectState) -> Literal["retrieve", "generate"]:
        recall = self.s.workflows and self.deps.workflows is not None
        return "retrieve" if self.s.retrieve_k > 0 or recall else "generate"

    def router(self, step: str) -> Callable[[CollectState], str]:
        """The pure router after ``step``: the next step in ``AFTER_VERIFY`` that has work."""

        def route(state: CollectState) -> str:
            return next((s for s in _later(step) if self.wanted(s, state)), END)

        route.__name__ = f"after_{step}"
        return route

    def wanted(self, step: str, state: CollectState) -> bool:
        s, graded = self.s, any(state.get("samples", {}).values())
        if step == "critique":
            return s.critic and graded
        if step == "self_review":
            return s.self_review > 0 and graded
        if step == "self_debug":
            return s.self_debug and s.debug_turns > 0 and bool(_unsolved(state))
        if step == "inject":
            wanted = (s.inject_errors and s.injections_per_answer > 0) or s.self_edit
            return wanted and any(_correct(state, t) for t in _tasks(state))
        if step == "induce":
            return s.workflows and self.deps.workflows is not None
        return True  # store


def collect(deps: CollectDeps, tasks: Sequence[Task], *, config: Any = None) -> dict[str, int]:
    """Run the collect graph once over ``tasks``; return its counts."""
    return build_collect_graph(deps).invoke(collect_input(tasks), config)["counts"]


def make_collector(
    grader: Grader,
    store: ExampleStore,
    settings: CollectSettings,
    *,
    teacher: ChatModel | None = None,
    workflows: WorkflowMemory | None = None,
) -> Callable[[ChatModel, list[Task], int], dict[str, int]]:
    """A ``collect(model, tasks, round) -> counts`` step for the round graph."""

    def run(model: ChatModel, tasks: list[Task], round: int) -> dict[str, int]:
        # A new seed per round: a rejected round's incumbent must not resample the same answers.
        update = {"round": round, "seed": settings.seed + round}
        chosen = settings.model_copy(update=update)
        return collect(CollectDeps(model, grader, store, chosen, teacher, workflows), tasks)

    return run


def _examples(task: Task, state: CollectState, s: CollectSettings, model: str) -> list[Example]:
    """The examples of one task, from the state (see ``collect_examples``)."""
    trajectory = state.get("debug", {}).get(task.id)
    return task_examples(
        task,
        state["samples"].get(task.id, []),
        round=s.round,
        agent=s.agent,
        model=model,
        trajectory=DebugTrajectory.model_validate(trajectory) if trajectory else None,
        injections=state.get("injections", {}).get(task.id, []),
        retrieved=state.get("retrieved", {}).get(task.id, []),
    )


def _by_task(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["task_id"], []).append(row)
    return grouped


def _pair_type(example: Example) -> str:
    return "injected" if example.agent == "inject" else str(example.error_type)


def _tasks(state: CollectState) -> list[Task]:
    return [Task.model_validate(t) for t in state.get("tasks", [])]


def _unsolved(state: CollectState) -> list[tuple[Task, list[dict[str, Any]]]]:
    """Tasks with answers but none correct, and their answers."""
    samples = state.get("samples", {})
    return [
        (t, samples[t.id])
        for t in _tasks(state)
        if samples.get(t.id) and not any(x.get("passed") for x in samples[t.id])
    ]


def _correct(state: CollectState, task: Task) -> list[str]:
    """Distinct verified-correct answers of a task: sampled ones, then a self-debug fix."""
    texts = [x["text"] for x in state.get("samples", {}).get(task.id, []) if x.get("passed")]
    trajectory = state.get("debug", {}).get(task.id)
    if trajectory:
        texts += [t["completion"] for t in trajectory["turns"] if t["verdict"]["passed"]]
    return list(dict.fromkeys(texts))
