"""The round graph: evaluate → collect → (augment) → train → evaluate → gate, repeated.

    graph = build_round_graph(deps, checkpointer=SqliteSaver(conn))
    graph.invoke(initial_state(deps), {"configurable": {"thread_id": "run"}})
    graph.invoke(None, {"configurable": {"thread_id": "run"}})      # resume after a crash

Each node returns a partial update of ``RoundState``; large artifacts (models,
evaluations) live on disk under ``deps.out_dir`` and the state holds their paths,
so checkpoints stay small. A node re-run after a crash redoes its own work only:
the store is idempotent (content-hash ids), generation is seeded, and models and
evaluations are written atomically, so nothing is lost or duplicated.

The gate promotes the candidate only if ``selfimprove.eval.gate.decide`` says so;
otherwise the incumbent stays and the next round starts from it again.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

from selfimprove.config import Config
from selfimprove.control import ApprovalDecision, ApprovalRequest
from selfimprove.eval.evaluate import EvalReport, evaluate
from selfimprove.eval.gate import decide
from selfimprove.eval.report import RoundRecord, critic_scores, eval_metrics, write_report
from selfimprove.events import emit
from selfimprove.files import write_text_atomic
from selfimprove.graphs.round_agents import (
    augment,
    choose_tasks,
    curate_round,
    offline_workflows,
)
from selfimprove.memory.base import ExampleStore
from selfimprove.memory.decontaminate import check_decontaminated
from selfimprove.memory.dedup import drop_duplicates
from selfimprove.memory.export import dpo_dataset, sft_dataset
from selfimprove.memory.workflows import WorkflowMemory
from selfimprove.models.base import ChatModel, metering
from selfimprove.tasks import Grader, TaskSet
from selfimprove.tasks.curriculum import TaskHistory
from selfimprove.trainers.manifest import MANIFEST_NAME, load_manifest
from selfimprove.types import Example

Collector = Callable[[ChatModel, list, int], dict[str, int]]
"""``collect(model, train_tasks, round) -> counts``: runs the collect graph for one round."""


class RoundState(TypedDict, total=False):
    round: int  # the round to run next (1-based)
    incumbent: str  # folder of the promoted model
    incumbent_eval: str  # its held-out evaluation (EvalReport JSON)
    incumbent_guard: str | None  # its guard-set evaluation, when the run has guard tasks
    candidate: str | None
    candidate_eval: str | None
    candidate_guard: str | None
    counts: dict[str, int]
    train_loss: list[float]
    timings: dict[str, float]  # seconds per stage of the current round
    usage: dict[str, float]  # model calls, tokens and cost of the current round (Usage fields)
    records: Annotated[list[dict[str, Any]], operator.add]


@dataclass
class RoundDeps:
    """What the round graph needs; everything is injected so tests can swap parts."""

    config: Config
    task_set: TaskSet
    store: ExampleStore
    grader: Grader
    load_model: Callable[[str], ChatModel]
    collect: Collector
    train: Callable[..., Any]  # trainers.train_round
    out_dir: Path
    show_progress: bool = True
    teacher: ChatModel | None = None  # writes new tasks and workflows; None: self mode
    workflows: WorkflowMemory | None = None
    on_event: Callable[[str, dict[str, Any]], None] = field(
        default=lambda kind, data: emit(kind, **data)
    )


def initial_state(base_model: str) -> RoundState:
    return {"round": 0, "incumbent": base_model, "records": []}


def build_round_graph(deps: RoundDeps, *, checkpointer: Any = None):
    """Compile the round graph over ``deps``.

    ``deps.config.loop.rounds`` is read after every round, so a budget change
    made while the graph runs takes effect at the next round boundary. With
    ``loop.require_approval`` the gate interrupts the graph (LangGraph
    ``interrupt``) before promoting and resumes with an ``ApprovalDecision``
    dump: ``graph.invoke(Command(resume=decision.model_dump()), thread)``.
    """
    history = TaskHistory(deps.store)  # the curriculum's records, read one round at a time

    def baseline(state: RoundState) -> RoundState:
        start = time.perf_counter()
        with metering() as spent:
            path, guard = _evaluate_all(deps, state["incumbent"], deps.out_dir / "round-0")
        report = EvalReport.model_validate_json(path.read_text())
        counts = {}
        if deps.config.loop.workflows and deps.config.loop.workflows_offline:
            counts["workflows/offline"] = offline_workflows(deps)
        record = RoundRecord(
            round=0,
            promoted=True,
            metrics=eval_metrics(report) | _guard_metric(_read(guard)),
            counts=counts,
            model_path=state["incumbent"],
            reasons=["baseline"],
            timings={"evaluate": round(time.perf_counter() - start, 2)},
            usage=spent.model_dump(),
        )
        deps.on_event("baseline", record.model_dump())
        return {
            "round": 1,
            "incumbent_eval": str(path),
            "incumbent_guard": guard,
            "records": [record.model_dump()],
        }

    def collect(state: RoundState) -> RoundState:
        deps.on_event("round_started", {"round": state["round"], "incumbent": state["incumbent"]})
        model = deps.load_model(state["incumbent"])
        tasks, chosen = choose_tasks(deps, state["round"], history)
        counts = chosen | deps.collect(model, tasks, state["round"])
        deps.on_event("collected", {"round": state["round"], **counts})
        return {"counts": counts}

    def augment_failures(state: RoundState) -> RoundState:
        counts = augment(deps, state["round"])
        return {"counts": {**state.get("counts", {}), **counts}}

    def train(state: RoundState) -> RoundState:
        r = state["round"]
        positives, pairs = _training_examples(deps.store, r)
        check_decontaminated(positives + pairs, deps.task_set.heldout + deps.task_set.guard)
        update: RoundState = {}
        if deps.config.loop.curate:
            positives, pairs, curated = curate_round(deps, r, positives, pairs)
            update["counts"] = {**state.get("counts", {}), **curated}
        needs = {"sft": bool(positives), "dpo": bool(pairs), "sft_dpo": bool(positives or pairs)}
        if not needs[deps.config.training.method]:
            return update | {"candidate": None, "train_loss": []}
        out_dir = deps.out_dir / f"round-{r}" / "model"
        if (out_dir / MANIFEST_NAME).exists():  # trained before a crash: never train twice
            loss = _losses(load_manifest(out_dir))
            return update | {"candidate": str(out_dir), "train_loss": loss}
        sft = sft_dataset(positives) if positives else None
        dpo = dpo_dataset(pairs) if pairs else None
        result = deps.train(state["incumbent"], sft, dpo, deps.config.training, out_dir)
        return update | {"candidate": str(result.model_path), "train_loss": _losses(result)}

    def evaluate_candidate(state: RoundState) -> RoundState:
        folder = deps.out_dir / f"round-{state['round']}"
        path, guard = _evaluate_all(deps, state["candidate"], folder)
        return {"candidate_eval": str(path), "candidate_guard": guard}

    def gate(state: RoundState) -> RoundState:
        before = EvalReport.model_validate_json(Path(state["incumbent_eval"]).read_text())
        guard_before = _read(state.get("incumbent_guard"))
        if state.get("candidate") is None:
            promote = False
            metrics = eval_metrics(before) | _guard_metric(guard_before)
            reasons = ["no training data this round: nothing to train, incumbent kept"]
        else:
            after = EvalReport.model_validate_json(Path(state["candidate_eval"]).read_text())
            guard_after = _read(state.get("candidate_guard"))
            loop = deps.config.loop
            decision = decide(
                before,
                after,
                margin=loop.promote_margin,
                max_negative_flips=loop.max_negative_flips,
                guard_incumbent=guard_before,
                guard_candidate=guard_after,
                guard_tolerance=loop.guard_tolerance,
                max_suite_drop=loop.max_suite_drop,
            )
            promote = decision.promote
            metrics = eval_metrics(after) | _guard_metric(guard_after)
            reasons = [
                *decision.reasons,
                f"{len(decision.negative_flips)} negative and "
                f"{len(decision.positive_flips)} positive flips",
            ]
            if promote and deps.config.loop.require_approval:
                promote, answer = _ask_operator(state, metrics, eval_metrics(before), reasons)
                reasons.append(answer)
        record = RoundRecord(
            round=state["round"],
            promoted=promote,
            metrics=metrics | critic_scores(state.get("counts", {})),
            counts=state.get("counts", {}),
            train_loss=state.get("train_loss", []),
            reasons=reasons,
            model_path=state.get("candidate"),
            timings=state.get("timings", {}),
            usage=state.get("usage", {}),
        )
        deps.on_event("gate", record.model_dump())
        update: RoundState = {
            "round": state["round"] + 1,
            "records": [record.model_dump()],
            "candidate": None,
            "candidate_eval": None,
            "candidate_guard": None,
            "timings": {},
            "usage": {},
        }
        if promote:
            update |= {
                "incumbent": state["candidate"],
                "incumbent_eval": state["candidate_eval"],
                "incumbent_guard": state.get("candidate_guard"),
            }
        return update

    def report(state: RoundState) -> RoundState:
        records = [RoundRecord.model_validate(r) for r in state["records"]]
        write_report(deps.out_dir, records, title=f"selfimprove: {deps.config.student.model}")
        return {}

    def next_step(state: RoundState) -> Literal["collect", "__end__"]:
        return "collect" if state["round"] <= deps.config.loop.rounds else END

    def after_train(state: RoundState) -> Literal["evaluate", "gate"]:
        return "evaluate" if state.get("candidate") else "gate"

    graph = StateGraph(RoundState)
    graph.add_node("baseline", baseline)
    graph.add_node("collect", _timed("collect", collect))
    graph.add_node("train", _timed("train", train))
    graph.add_node("evaluate", _timed("evaluate", evaluate_candidate))
    graph.add_node("gate", gate)
    graph.add_node("report", report)
    graph.add_edge(START, "baseline")
    graph.add_edge("baseline", "report")
    if deps.config.loop.augment:
        graph.add_node("augment", _timed("augment", augment_failures))
        graph.add_edge("collect", "augment")
        graph.add_edge("augment", "train")
    else:
        graph.add_edge("collect", "train")
    graph.add_conditional_edges("train", after_train)
    graph.add_edge("evaluate", "gate")
    graph.add_edge("gate", "report")
    graph.add_conditional_edges("report", next_step)
    return graph.compile(checkpointer=checkpointer)


def _ask_operator(
    state: RoundState, candidate: dict[str, float], incumbent: dict[str, float], reasons: list[str]
) -> tuple[bool, str]:
    """Pause the graph until a human approves or rejects the promotion; (promote, reason)."""
    request = ApprovalRequest(
        round=state["round"],
        candidate=state.get("candidate"),
        incumbent=state["incumbent"],
        candidate_metrics=candidate,
        incumbent_metrics=incumbent,
        reasons=list(reasons),
    )
    decision = ApprovalDecision.model_validate(interrupt(request.model_dump()))
    verb = "approved" if decision.approve else "rejected"
    note = f": {decision.note}" if decision.note else ""
    return decision.approve, f"promotion {verb} by {decision.by}{note}"


def _timed(stage: str, node: Callable[[RoundState], RoundState]) -> Callable:
    """``node`` that also records its wall time under ``timings[stage]`` and adds what
    its model calls spent (tokens, cost) to the round's ``usage``.

    A stage re-run after a crash counts its calls again: the usage is what the
    finished attempt spent, not what the crashed one did.
    """

    def timed(state: RoundState) -> RoundState:
        start = time.perf_counter()
        with metering() as spent:
            update = node(state)
        took = round(time.perf_counter() - start, 2)
        usage = Counter(state.get("usage", {}))
        usage.update(spent.model_dump())
        return update | {
            "timings": {**state.get("timings", {}), stage: took},
            "usage": dict(usage),
        }

    timed.__name__ = stage
    return timed


def _losses(result: Any) -> list[float]:
    return [loss for stage in result.stages for loss in stage.losses]


def _evaluate_all(deps: RoundDeps, model_path: str, folder: Path) -> tuple[Path, str | None]:
    """Evaluate a model on the held-out tasks (``eval.json``) and any guard tasks (``guard.json``).

    A finished evaluation file is reused, so a resumed round does not evaluate twice.
    """
    jobs = [(folder / "eval.json", deps.task_set.heldout)]
    if deps.task_set.guard:
        jobs.append((folder / "guard.json", deps.task_set.guard))
    model = None
    for path, tasks in jobs:
        if path.exists():
            continue
        model = model or deps.load_model(model_path)
        report = evaluate(
            model,
            tasks,
            deps.grader,
            seed=deps.config.student.seed,
            show_progress=deps.show_progress,
        )
        write_text_atomic(path, report.model_dump_json())
    return jobs[0][0], str(jobs[1][0]) if len(jobs) > 1 else None


def _guard_metric(report: EvalReport | None) -> dict[str, float]:
    return {} if report is None else {"guard_pass_at_1": report.pass_at_1}


def _read(path: str | None) -> EvalReport | None:
    return None if path is None else EvalReport.model_validate_json(Path(path).read_text())


def _training_examples(store: ExampleStore, round: int) -> tuple[list[Example], list[Example]]:
    """This round's verified positives and DPO pairs from training tasks, duplicates dropped."""
    where = {"$and": [{"round": round}, {"split": {"$ne": "heldout"}}]}
    positives = drop_duplicates(store.find({"$and": [{"kind": "positive"}, where]}))
    pairs = drop_duplicates(store.find({"$and": [{"kind": "pair"}, where]}))
    return positives, pairs
