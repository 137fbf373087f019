"""The web console: a Gradio app on the REST server's FastAPI app (``/console/``).

    app = create_app("runs/demo", token=token)    # selfimprove.console.server mounts it
    mount_console(app, Run("runs/demo"), operator)

What it shows, refreshed every two seconds from the run folder (so it watches a
loop running in another process as well as one started from the server):

- a status line: state, rounds done, baseline and current held-out pass@1, the
  step in progress;
- a promotion waiting for approval (``loop.require_approval``): the candidate's
  metrics next to the incumbent's, the gate's reasons, Approve / Reject;
- tabs: **Chat** (the operator: slash commands always, free text with an LLM),
  **Rounds** (table and held-out accuracy per round), **Examples** (filters by
  kind, round, verdict, operator, similarity; one example with its lineage),
  **Progress** (the latest events; pause, resume, stop, rounds budget).

Gradio is the ``console`` extra (``pip install selfimprove[console]``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from selfimprove.console import commands
from selfimprove.control import DecisionError
from selfimprove.runs import Run, RunError

if TYPE_CHECKING:
    from fastapi import FastAPI

REFRESH_S = 2.0
EXAMPLE_KINDS = ["any", "attempt", "positive", "negative", "pair", "critique", "workflow"]
USER_ERRORS = (RunError, DecisionError, ValueError)


def mount_console(app: FastAPI, run: Run, operator: Any, path: str = "/console") -> None:
    """Mount the console on ``app`` at ``path`` (auth is the app's middleware)."""
    gr.mount_gradio_app(app, build_console(run, operator), path=path, ssr_mode=False)


def build_console(run: Run, operator: Any) -> gr.Blocks:
    """The console's Gradio Blocks over ``run``; ``operator.reply(text) -> markdown``."""
    with gr.Blocks(title=f"selfimprove · {run.out_dir}", analytics_enabled=False) as console:
        with gr.Row():
            status = gr.Markdown(status_markdown(run), elem_id="status")
            ask = gr.Checkbox(
                value=asks_approval(run),
                label="Ask me before promoting",
                elem_id="ask",
                scale=0,
                min_width=220,
            )
        with gr.Group(visible=False, elem_id="approval") as approval:
            approval_text = gr.Markdown(elem_id="approval-text")
            note = gr.Textbox(label="Note (optional)", elem_id="approval-note")
            with gr.Row():
                approve = gr.Button("Approve promotion", variant="primary", elem_id="approve")
                reject = gr.Button("Reject (roll back)", variant="stop", elem_id="reject")
            decided = gr.Markdown(elem_id="decision")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chatbot = gr.Chatbot(
                    value=[{"role": "assistant", "content": _greeting(run, operator)}],
                    elem_id="chatbot",
                    height=420,
                    feedback_options=None,
                )
                with gr.Row():
                    message = gr.Textbox(
                        placeholder="/status, /rounds, /failures 1, /approve ... or ask",
                        show_label=False,
                        scale=8,
                        elem_id="chat-input",
                    )
                    send = gr.Button("Send", scale=1, elem_id="chat-send")
            with gr.Tab("Rounds", id="rounds"):
                rounds_table = gr.Dataframe(rounds_frame(run), elem_id="rounds", interactive=False)
                plot = accuracy_plot(run)
            with gr.Tab("Examples", id="examples"):
                with gr.Row():
                    kind = gr.Dropdown(EXAMPLE_KINDS, value="any", label="kind")
                    round_box = gr.Number(label="round (blank: any)", precision=0)
                    verdict = gr.Dropdown(["any", "passed", "failed"], value="any", label="verdict")
                    operator_box = gr.Textbox(label="operator (error type)")
                    query = gr.Textbox(label="similar to")
                find = gr.Button("Find", elem_id="find")
                found = gr.Dataframe(elem_id="found", interactive=False, wrap=True)
                with gr.Row():
                    example_id = gr.Textbox(label="example id", scale=4, elem_id="example-id")
                    show = gr.Button("Show with lineage", scale=1)
                example_view = gr.Markdown(elem_id="example")
            with gr.Tab("Progress", id="progress"):
                with gr.Row():
                    pause = gr.Button("Pause", elem_id="pause")
                    resume = gr.Button("Resume", elem_id="resume")
                    stop = gr.Button("Stop after this step", variant="stop", elem_id="stop")
                    budget = gr.Number(
                        value=run.status().rounds_planned,
                        label="rounds budget",
                        precision=0,
                        minimum=0,
                    )
                    set_budget = gr.Button("Set")
                control_note = gr.Markdown()
                events = gr.Dataframe(events_frame(run), elem_id="events", interactive=False)

        def chat(text: str, history: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
            text = (text or "").strip()
            if not text:
                return "", history
            try:
                answer = operator.reply(text)
            except Exception as exc:  # the operator's LLM failed: say so in the chat
                answer = f"The operator could not answer: {type(exc).__name__}: {exc}"
            return "", [
                *history,
                {"role": "user", "content": text},
                {"role": "assistant", "content": answer},
            ]

        def refresh() -> tuple[Any, ...]:
            pending = run.control.pending()
            return (
                status_markdown(run),
                gr.update(visible=pending is not None),
                approval_markdown(pending) if pending else "",
                rounds_frame(run),
                accuracy_plot(run),
                events_frame(run),
                asks_approval(run),
            )

        def command(text: str) -> str:  # the buttons say what the same slash command says
            return commands.run_command(run, text, by="console")

        def decide(approve_it: bool, note: str) -> tuple[str, str]:
            return command(f"/{'approve' if approve_it else 'reject'} {note or ''}"), ""

        def budget_set(rounds: float | None) -> str:
            if rounds is None:
                return "Type a number of rounds first."
            return command(f"/budget rounds={int(rounds)}")

        ask.input(lambda on: command(f"/approval {'on' if on else 'off'}"), ask, control_note)
        message.submit(chat, [message, chatbot], [message, chatbot])
        send.click(chat, [message, chatbot], [message, chatbot])
        outputs = [status, approval, approval_text, rounds_table, plot, events, ask]
        gr.Timer(REFRESH_S).tick(refresh, None, outputs)
        approve.click(lambda t: decide(True, t), note, [decided, note]).then(refresh, None, outputs)
        reject.click(lambda t: decide(False, t), note, [decided, note]).then(refresh, None, outputs)
        find.click(
            lambda *a: examples_frame(run, *a),
            [kind, round_box, verdict, operator_box, query],
            found,
        )
        show.click(lambda i: example_markdown(run, i), example_id, example_view)
        pause.click(lambda: command("/pause"), None, control_note)
        resume.click(lambda: command("/resume"), None, control_note)
        stop.click(lambda: command("/stop"), None, control_note)
        set_budget.click(budget_set, budget, control_note)
    return console


def _greeting(run: Run, operator: Any) -> str:
    llm = getattr(operator, "model", None) is not None
    chat = "Ask in plain words, or use" if llm else "No operator LLM is configured: use"
    return (
        f"Watching **{run.out_dir}**. {chat} slash commands: `/status`, `/rounds`, "
        "`/failures N`, `/example ID`, `/search TEXT`, `/approve`, `/reject`, `/pause`, "
        "`/resume`, `/budget rounds=N`, `/approval on|off`, `/help`."
    )


def asks_approval(run: Run) -> bool:
    """Whether the run's next gate will ask a human (the live switch, else the config)."""
    wanted = run.control.read().require_approval
    if wanted is not None:
        return wanted
    try:
        return run.config.loop.require_approval
    except RunError:
        return False


def status_markdown(run: Run) -> str:
    """One status line (plus the step in progress) for the page's header."""
    status = run.status()
    line = f"**{run.out_dir}** · state **{status.state.replace('_', ' ')}**"
    planned = f"/{status.rounds_planned}" if status.rounds_planned is not None else ""
    line += f" · rounds done {status.rounds_done}{planned}"
    if status.baseline_pass_at_1 is not None:
        line += f" · held-out pass@1 baseline {status.baseline_pass_at_1:.1%}"
    if status.heldout_pass_at_1 is not None:
        line += f", promoted model {status.heldout_pass_at_1:.1%}"
    if status.state == "paused" and status.control.pause_reason:
        line += f" · **paused by a health check:** {status.control.pause_reason}"
    if status.current_round is not None and status.state in ("running", "paused"):
        line += f" · round {status.current_round}"
    progress = status.progress
    if progress and status.state == "running":
        if progress["kind"] == "training_step":
            line += f" · {progress['stage']} step {progress['step']}/{progress['total']}"
            line += f" loss {progress['loss']:.3f}"
        elif progress["kind"] == "progress":
            line += f" · {progress['step']} {progress['done']}/{progress['total']}"
    return line


def approval_markdown(pending: Any) -> str:
    """The pending promotion: incumbent and candidate metrics side by side, the gate's reasons."""
    rows = ["| metric | incumbent | candidate | change |", "|---|---:|---:|---:|"]
    names = sorted(pending.candidate_metrics, key=lambda n: (n != "heldout_pass_at_1", n))
    for name in names:
        new = pending.candidate_metrics[name]
        old = pending.incumbent_metrics.get(name)
        change = f"{(new - old) * 100:+.1f} pts" if old is not None else ""
        shown_old = f"{old:.1%}" if old is not None else "–"
        rows.append(f"| {name} | {shown_old} | {new:.1%} | {change} |")
    reasons = "\n".join(f"- {r}" for r in pending.reasons)
    return (
        f"### Round {pending.round}: promote `{_short(pending.candidate)}`?\n"
        f"The gate would promote it over `{_short(pending.incumbent)}`; "
        "the loop waits for you.\n\n" + "\n".join(rows) + f"\n\n{reasons}"
    )


def _short(path: str | None) -> str:
    """A model folder as ``round-1/model`` (inside the run) or its last part."""
    parts = Path(path or "").parts
    return (
        "/".join(parts[-2:])
        if len(parts) > 1 and parts[-2].startswith("round-")
        else (parts[-1] if parts else "")
    )


def rounds_frame(run: Run) -> pd.DataFrame:
    rows = []
    for r in run.rounds():
        suites = {
            k.removesuffix("_pass_at_1"): f"{v:.1%}"
            for k, v in r.metrics.items()
            if k.endswith("_pass_at_1") and k != "heldout_pass_at_1"
        }
        rows.append(
            {
                "round": r.round,
                "promoted": "baseline" if r.round == 0 else ("yes" if r.promoted else "no"),
                "held-out pass@1": f"{r.metrics.get('heldout_pass_at_1', 0.0):.1%}",
                **suites,
                "new examples": r.counts.get("new", ""),
                "minutes": round(sum(r.timings.values()) / 60, 1),
                "reasons": "; ".join(r.reasons)[:200],
            }
        )
    return pd.DataFrame(rows or [{"round": "", "promoted": "no rounds yet"}])


def accuracy_frame(run: Run) -> pd.DataFrame:
    """Held-out pass@1 of every round's candidate, and of the promoted model after it.

    Rounds are labels ("0", "1", ...), so the axis shows whole rounds.
    """
    rows, best = [], None
    for r in run.rounds():
        score = r.metrics.get("heldout_pass_at_1", 0.0)
        rows.append({"round": str(r.round), "pass@1": score, "model": "candidate"})
        if r.promoted:
            best = score
        if best is not None:
            rows.append({"round": str(r.round), "pass@1": best, "model": "promoted"})
    return pd.DataFrame(rows, columns=["round", "pass@1", "model"])


def accuracy_plot(run: Run) -> gr.LinePlot:
    frame = accuracy_frame(run)
    return gr.LinePlot(
        frame,
        x="round",
        y="pass@1",
        color="model",
        sort=list(dict.fromkeys(frame["round"])),  # round order, not string order
        title="Held-out pass@1 per round",
        y_lim=[0, 1],
        elem_id="accuracy",
    )


def events_frame(run: Run, last: int = 30) -> pd.DataFrame:
    rows = [
        {
            "seq": e.seq,
            "time": time.strftime("%H:%M:%S", time.localtime(e.time)),
            "round": "" if e.round is None else e.round,
            "event": e.kind,
            "data": json.dumps(e.data, default=str)[:160],
        }
        for e in run.events()[-last:]
    ]
    return pd.DataFrame(rows[::-1] or [{"seq": "", "event": "no events yet"}])


def examples_frame(
    run: Run, kind: str, round: float | None, verdict: str, operator: str, query: str
) -> pd.DataFrame:
    try:
        found = run.examples(
            kind=None if kind == "any" else kind,
            round=None if round is None else int(round),
            passed={"any": None, "passed": True, "failed": False}[verdict],
            operator=operator.strip() or None,
            query=query.strip() or None,
            limit=50,
        )
    except USER_ERRORS as exc:
        return pd.DataFrame([{"error": str(exc)}])
    rows = [
        {
            "id": e.id,
            "kind": e.kind,
            "round": e.round,
            "passed": e.passed,
            "agent": e.agent,
            "operator": e.error_type or "",
            "task": e.task_id or "",
            "completion": e.completion[:120],
        }
        for e in found
    ]
    return pd.DataFrame(rows or [{"id": "", "kind": "nothing matched"}])


def example_markdown(run: Run, example_id: str) -> str:
    try:
        view = run.example((example_id or "").strip())
    except USER_ERRORS as exc:
        return str(exc)
    lines = [_example_block("Example", view.example)]
    lines += [_example_block(f"Parent {i + 1}", p) for i, p in enumerate(view.parents)]
    if view.children:
        lines.append("**Children:** " + ", ".join(f"`{c.id}` ({c.kind})" for c in view.children))
    return "\n\n".join(lines)


def _example_block(title: str, example: Any) -> str:
    verdict = {True: "passed", False: "failed", None: "not graded"}[example.passed]
    head = (
        f"**{title}** `{example.id}` · {example.kind} · round {example.round} · "
        f"{example.agent} · {verdict}"
    )
    if example.error_type:
        head += f" · operator `{example.error_type}`"
    body = f"\n\nPrompt:\n```\n{example.prompt[:1500]}\n```\nCompletion:\n```\n{example.completion[:1500]}\n```"
    if example.rejected:
        body += f"\nRejected:\n```\n{example.rejected[:1500]}\n```"
    if example.reason:
        body += f"\nVerifier: {example.reason[:300]}"
    return head + body
