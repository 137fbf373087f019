"""The console's slash commands: read and steer a run with no LLM at all.

    from selfimprove.console.commands import run_command
    run = Run("runs/demo")
    print(run_command(run, "/status"))          # markdown
    run_command(run, "/failures 1 20")
    run_command(run, "/approve looks good")     # a human decision: no LLM tool does this

Every command returns markdown. A user error (unknown command, bad argument, no
run yet, nothing waiting for approval) returns one paragraph saying what to type
instead; ``run_command`` never raises for those. The ``*_text`` functions below
raise ``RunError``/``DecisionError``/``ValueError`` instead; the operator agent's
tools call them, so the LLM and the slash commands read the same views.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from selfimprove.control import DecisionError
from selfimprove.eval.report import EXAMPLE_KINDS, RoundRecord, spent, suite_names
from selfimprove.runs import Run, RunError, RunStatus
from selfimprove.types import Example

DEFAULT_LIMIT = 10
_ACTIVE = ("running", "paused", "awaiting_approval")


class UsageError(ValueError):
    """A slash command typed wrong; the message says what to type instead."""


# -- views (shared with the operator's tools) ---------------------------------------------
def status_text(run: Run) -> str:
    """Where the run stands: state, rounds, scores, pending approval, control."""
    _require_run(run)
    return render_status(run.status())


def rounds_text(run: Run) -> str:
    rounds = run.rounds()
    if not rounds:
        return f"No rounds in `{run.out_dir}` yet: the baseline is not measured. " + _status_hint()
    return render_rounds(rounds)


def failures_text(run: Run, round: int, limit: int = DEFAULT_LIMIT) -> str:
    _require_run(run)
    failed = run.failures(round, limit=limit)
    if not failed:
        return f"No failed attempts stored for round {round}."
    return f"Failed attempts of round {round} (up to {limit}):\n\n" + render_examples(failed)


def search_text(run: Run, query: str, kind: str | None = None, limit: int = DEFAULT_LIMIT) -> str:
    _require_run(run)
    if not query.strip():
        raise UsageError("give some text to search for, e.g. `/search off by one in addition`")
    if kind is not None and kind not in EXAMPLE_KINDS:
        raise UsageError(
            f"there are no {kind!r} examples; kind is one of {', '.join(EXAMPLE_KINDS)}, "
            "e.g. `/search kind=negative What is 7 * 8?`"
        )
    found = run.examples(query=query, kind=kind, limit=limit)
    what = f"{kind} examples" if kind else "examples"
    if not found:
        return f"No stored {what} match {query!r}."
    return f"Stored {what} nearest to {query!r}:\n\n" + render_examples(found)


def example_text(run: Run, example_id: str) -> str:
    _require_run(run)
    view = run.example(example_id.strip().strip("`"))
    lines = [_describe(view.example, view.id), ""]
    if view.parents:
        lines.append("**Parents** (nearest first):")
        lines += [f"- {_one_line(p)}" for p in view.parents]
    else:
        lines.append("**Parents:** none (an original attempt).")
    if view.children:
        lines += ["", f"**Children** ({len(view.children)}):"]
        lines += [f"- {_one_line(c)}" for c in view.children[:DEFAULT_LIMIT]]
    return "\n".join(lines)


def events_text(run: Run, n: int = DEFAULT_LIMIT) -> str:
    events = run.events()[-n:] if n > 0 else []
    if not events:
        return f"No events in `{run.out_dir}` yet. " + _status_hint()
    rows = [
        [
            str(e.seq),
            time.strftime("%H:%M:%S", time.localtime(e.time)),
            e.kind,
            "" if e.round is None else str(e.round),
            _clip(json.dumps(e.data, separators=(",", ":")), 90) if e.data else "",
        ]
        for e in events
    ]
    return _table(["seq", "time", "kind", "round", "data"], rows)


def pause_text(run: Run) -> str:
    state = _require_run(run)
    run.pause()
    if state not in _ACTIVE:
        return (
            f"Marked paused, but the run is not running now (state: {state}): when it is "
            "resumed (`selfimprove run CONFIG --resume`) it waits at its first step until "
            "`/resume`."
        )
    return "Paused: the loop waits after its current step (its state is saved); `/resume` goes on."


def resume_text(run: Run) -> str:
    state = _require_run(run)
    run.resume()
    if state not in _ACTIVE:
        return f"Cleared the pause; the run is not running now (state: {state})."
    return "Resumed: the loop goes on from where it waited."


def stop_text(run: Run) -> str:
    state = _require_run(run)
    if state not in _ACTIVE:
        return f"Nothing to stop: the run is not running now (state: {state})."
    run.stop()
    return "Stopping after the current step; `selfimprove run CONFIG --resume` continues later."


def budget_text(run: Run, rounds: int | None = None, tasks_per_round: int | None = None) -> str:
    _require_run(run)
    control = run.set_budget(rounds=rounds, tasks_per_round=tasks_per_round)
    parts = [f"rounds {control.rounds}" if control.rounds is not None else ""]
    parts.append(f"tasks per round {control.tasks_per_round}" if control.tasks_per_round else "")
    return (
        "Budget set: "
        + ", ".join(p for p in parts if p)
        + "; the loop applies it at its next step."
    )


def decide_text(run: Run, approve: bool, note: str = "", *, by: str = "operator") -> str:
    """Approve or reject the pending promotion (a human action: no LLM tool calls this)."""
    pending = run.control.pending()
    decision = run.approve(note, by=by) if approve else run.reject(note, by=by)
    candidate = pending.candidate if pending else None
    if approve:
        return f"Approved round {decision.round}: the loop promotes `{candidate}` and goes on." + (
            f" Note: {note}" if note else ""
        )
    return (
        f"Rejected round {decision.round}: the loop keeps the incumbent"
        + (f" `{pending.incumbent}`" if pending else "")
        + " and goes on."
        + (f" Note: {note}" if note else "")
    )


# -- rendering ----------------------------------------------------------------------------
def render_status(status: RunStatus) -> str:
    planned = "?" if status.rounds_planned is None else str(status.rounds_planned)
    lines = [
        f"**{status.state}** · `{status.out_dir}` · rounds done {status.rounds_done}/{planned}"
    ]
    if status.baseline_pass_at_1 is not None:
        line = f"- held-out pass@1: baseline {status.baseline_pass_at_1:.1%}"
        if status.heldout_pass_at_1 is not None and status.rounds_done:
            line += f" → promoted {status.heldout_pass_at_1:.1%}"
        lines.append(line)
    if status.usage:
        lines.append(f"- model tokens: {spent(status.usage)}")
    if status.last_event is not None:
        event = status.last_event
        where = f" (round {event.round})" if event.round is not None else ""
        lines.append(f"- last event: {event.kind}{where}")
    if status.progress and status.state in _ACTIVE:
        p = status.progress
        if "done" in p and "total" in p:
            lines.append(f"- progress: {p.get('step', p['kind'])} {p['done']}/{p['total']}")
    control = status.control
    flags = [
        ("paused: " + control.pause_reason if control.pause_reason else "paused")
        if control.paused
        else "",
        "stop requested" if control.stop else "",
        f"rounds budget {control.rounds}" if control.rounds is not None else "",
        f"tasks per round {control.tasks_per_round}" if control.tasks_per_round else "",
    ]
    if any(flags):
        lines.append("- control: " + ", ".join(f for f in flags if f))
    request = status.pending_approval
    if request is not None:
        new = request.candidate_metrics.get("heldout_pass_at_1")
        old = request.incumbent_metrics.get("heldout_pass_at_1")
        score = (
            f" (held-out pass@1 {old:.1%} → {new:.1%})"
            if new is not None and old is not None
            else ""
        )
        lines += [
            "",
            f"**Waiting for approval:** round {request.round} would promote "
            f"`{request.candidate}` over `{request.incumbent}`{score}.",
            *(f"- {_clip(r, 160)}" for r in request.reasons),
            "",
            "Type `/approve [note]` to promote it or `/reject [note]` to keep the incumbent.",
        ]
    return "\n".join(lines)


def render_rounds(rounds: Sequence[RoundRecord]) -> str:
    suites = suite_names(rounds)
    head = ["round", "promoted", "held-out pass@1", *suites, "new examples", "reasons"]
    rows = []
    for r in rounds:
        promoted = "baseline" if r.round == 0 else ("yes" if r.promoted else "no (rolled back)")
        rows.append(
            [
                str(r.round),
                promoted,
                _pct(r.metrics.get("heldout_pass_at_1")),
                *(_pct(r.metrics.get(f"{s}_pass_at_1")) for s in suites),
                str(r.counts.get("new", "")),
                _clip("; ".join(r.reasons), 80),
            ]
        )
    return _table(head, rows)


def render_examples(examples: Sequence[Example]) -> str:
    """One bullet per example, its full id first (a table would cut the ids in a terminal)."""
    lines = []
    for e in examples:
        graded = {True: " · passed", False: " · failed", None: ""}[e.passed]
        why = e.error_type or e.reason
        lines.append(
            f"- `{e.id}` **{e.kind}** round {e.round}{graded}: {_clip(e.prompt, 70)!r} → "
            f"{_clip(e.completion, 50)!r}" + (f" ({_clip(why, 50)})" if why else "")
        )
    return "\n".join(lines)


def _describe(e: Example, example_id: str) -> str:
    passed = {True: "passed", False: "failed", None: "not graded"}[e.passed]
    head = f"**{e.kind}** `{example_id}` · round {e.round} · agent {e.agent} · {passed}"
    if e.task_id:
        head += f" · task `{e.task_id}`"
    lines = [head, "", "Prompt:", _quote(e.prompt)]
    lines += [
        "",
        "Chosen:" if e.kind == "pair" else "Completion:",
        _quote(e.completion or "(empty)"),
    ]
    if e.rejected is not None:
        lines += ["", "Rejected:", _quote(e.rejected)]
    if e.error_type:
        lines.append(f"\nInjected error: {e.error_type}")
    if e.reason:
        lines.append(f"\nReason: {_clip(e.reason, 300)}")
    return "\n".join(lines)


def _one_line(e: Example) -> str:
    extra = f" ({e.error_type})" if e.error_type else ""
    return f"**{e.kind}**{extra} `{e.id}` round {e.round}: {_clip(e.completion, 80)!r}"


def _quote(text: str, limit: int = 600) -> str:
    return "```text\n" + _clip(text, limit, one_line=False).replace("```", "'''") + "\n```"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _clip(text: str, limit: int, *, one_line: bool = True) -> str:
    if one_line:
        text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _no_run(run: Run) -> str:
    return (
        f"No run in `{run.out_dir}` yet. Start one with `selfimprove demo --out {run.out_dir}` "
        "or `selfimprove run CONFIG.yaml`, or open another folder with `selfimprove chat --run DIR`."
    )


def _status_hint() -> str:
    return "`/status` shows what the run is doing."


def _require_run(run: Run) -> str:
    """The run's state; raises ``RunError`` when the folder holds no run."""
    status = run.status()
    if status.state == "not_started" and not (run.out_dir / "config.json").exists():
        raise RunError(_no_run(run))
    return status.state


# -- parsing ------------------------------------------------------------------------------
Handler = Callable[[Run, str, str], str]


def _int(text: str, what: str, usage: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, got {text!r}; type {usage}") from None
    if value < minimum:
        raise UsageError(f"{what} must be at least {minimum}, got {value}; type {usage}")
    return value


def _cmd_failures(run: Run, args: str, by: str) -> str:
    usage = "`/failures ROUND [LIMIT]`, e.g. `/failures 1` or `/failures 1 20`"
    parts = args.split()
    if not 1 <= len(parts) <= 2:
        raise UsageError(f"`/failures` takes a round number and an optional limit: {usage}.")
    round = _int(parts[0], "the round", usage)
    limit = _int(parts[1], "the limit", usage, minimum=1) if len(parts) == 2 else DEFAULT_LIMIT
    return failures_text(run, round, limit)


def _cmd_example(run: Run, args: str, by: str) -> str:
    if len(args.split()) != 1:
        raise UsageError(
            "`/example` takes one example id, e.g. `/example 3f2a...` "
            "(ids are in the tables of `/failures` and `/search`)."
        )
    try:
        return example_text(run, args)
    except RunError as exc:
        if "no example with id" not in str(exc):
            raise
        raise UsageError(
            f"{exc}; copy an id from the tables of `/failures ROUND` or `/search TEXT`"
        ) from None


def _cmd_search(run: Run, args: str, by: str) -> str:
    kind = None
    if args.startswith("kind="):
        first, _, args = args.partition(" ")
        kind = first.removeprefix("kind=")
    if not args.strip():
        raise UsageError(
            "`/search` needs text to look for: `/search TEXT` or `/search kind=pair TEXT`."
        )
    return search_text(run, args.strip(), kind=kind)


def _cmd_budget(run: Run, args: str, by: str) -> str:
    usage = "`/budget rounds=N`, `/budget tasks=M` or `/budget rounds=N tasks=M`"
    keys = {"rounds": "rounds", "tasks": "tasks_per_round", "tasks_per_round": "tasks_per_round"}
    values: dict[str, int] = {}
    for part in args.split():
        key, sep, value = part.partition("=")
        if not sep or key not in keys:
            raise UsageError(f"`/budget` takes key=value pairs, got {part!r}; type {usage}.")
        values[keys[key]] = _int(value, key, usage, minimum=0 if key == "rounds" else 1)
    if not values:
        raise UsageError(f"`/budget` needs a new budget: type {usage}.")
    return budget_text(run, **values)


def _cmd_approval(run: Run, args: str, by: str) -> str:
    switch = {"on": True, "off": False}.get(args.lower())
    if switch is None:
        raise UsageError("`/approval` takes `on` or `off`: type `/approval on` or `/approval off`.")
    _require_run(run)
    run.require_approval(switch)
    if switch:
        return "From the next gate on, the loop asks before promoting: `/approve` or `/reject`."
    return "From the next gate on, the gate promotes on its own again."


def _cmd_events(run: Run, args: str, by: str) -> str:
    usage = "`/events` or `/events 30`"
    n = _int(args, "the number of events", usage, minimum=1) if args else DEFAULT_LIMIT
    return events_text(run, n)


def _no_args(view: Callable[[Run], str], name: str) -> Handler:
    def handler(run: Run, args: str, by: str) -> str:
        if args:
            raise UsageError(f"`/{name}` takes no arguments; type just `/{name}`.")
        return view(run)

    return handler


COMMANDS: dict[str, tuple[str, str, Handler]] = {
    "help": ("/help", "this list", lambda run, args, by: help_text()),
    "status": (
        "/status",
        "state, rounds, scores, pending approval",
        _no_args(status_text, "status"),
    ),
    "rounds": (
        "/rounds",
        "the table of rounds and the gate's reasons",
        _no_args(rounds_text, "rounds"),
    ),
    "failures": ("/failures ROUND [LIMIT]", "failed attempts of a round", _cmd_failures),
    "example": ("/example ID", "one example with its lineage (parents, children)", _cmd_example),
    "search": ("/search [kind=K] TEXT", "stored examples nearest to TEXT", _cmd_search),
    "events": ("/events [N]", "the last N events (default 10)", _cmd_events),
    "approve": (
        "/approve [NOTE]",
        "promote the candidate waiting for approval",
        lambda run, args, by: decide_text(run, True, args, by=by),
    ),
    "reject": (
        "/reject [NOTE]",
        "keep the incumbent instead",
        lambda run, args, by: decide_text(run, False, args, by=by),
    ),
    "approval": ("/approval on|off", "ask before every promotion, or not", _cmd_approval),
    "pause": ("/pause", "pause after the current step", _no_args(pause_text, "pause")),
    "resume": ("/resume", "continue a paused run", _no_args(resume_text, "resume")),
    "stop": ("/stop", "stop after the current step (resumable)", _no_args(stop_text, "stop")),
    "budget": ("/budget rounds=N tasks=M", "change the rounds or tasks per round", _cmd_budget),
}


def help_text() -> str:
    rows = [[f"`{usage}`", what] for usage, what, _ in COMMANDS.values()]
    return (
        _table(["command", "what it does"], rows)
        + "\n\nAnything else you type goes to the operator model, when one is configured."
    )


def run_command(run: Run, text: str, *, by: str = "operator") -> str:
    """Run one slash command (``"/failures 1"``) and return its markdown reply.

    User errors come back as a message, never as an exception.
    """
    name, _, args = text.strip().removeprefix("/").partition(" ")
    name, args = name.lower(), args.strip()
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"Did you mean `/{close[0]}`? " if close else ""
        known = ", ".join(f"/{c}" for c in COMMANDS)
        return (
            f"Unknown command `/{name}`. {hint}Commands: {known}. Type `/help` for what each does."
        )
    try:
        return COMMANDS[name][2](run, args, by)
    except DecisionError as exc:
        return f"{_sentence(exc)} {_status_hint()}"
    except ValidationError as exc:  # a budget out of range
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        return f"{field}: {error['msg']} (got {error.get('input')!r}). Type `/help` for usage."
    except (RunError, ValueError) as exc:  # UsageError and RunError say what to type
        return _sentence(exc)


def _sentence(exc: Exception) -> str:
    text = str(exc).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
