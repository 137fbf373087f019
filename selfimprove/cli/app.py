"""The ``selfimprove`` command line: thin commands over ``selfimprove.api``.

    selfimprove verify TASKS.jsonl --solutions SOLUTIONS.jsonl [--json]
    selfimprove demo [--out DIR] [--rounds N] [--resume]
    selfimprove run CONFIG.yaml [--resume]
    selfimprove tasks SUITE [--split heldout] [--n 100]      # export a built-in suite as JSONL
    selfimprove console [--run runs/demo]                     # web console (login URL printed)
    selfimprove serve [--run runs/demo] [--no-ui]             # REST API (+ console)
    selfimprove chat [--run runs/demo]                        # operator chat in the terminal

User errors (bad files, bad config) print one clear message and exit with
status 2; a model or provider that fails for good (``ModelError``: server down,
bad key, retries spent) prints its message and exits with status 1. No tracebacks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selfimprove.config import Config, ConfigError, load_config
from selfimprove.models.base import ModelError
from selfimprove.tasks.loaders import TaskFileError

app = typer.Typer(
    name="selfimprove",
    help="A language model improves itself in gated rounds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_USER_ERRORS = (ConfigError, TaskFileError, FileNotFoundError)
_SAVED = "the run is saved up to its last finished step: fix that, then rerun with --resume"


def _fail(message: str, code: int = 2) -> None:
    # escaped: a provider's message may hold brackets that rich would read as markup
    text = f"[bold red]error:[/] {escape(message)}"
    Console(stderr=True).print(text, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _check_out_dir(out: Path) -> None:
    """Fail early on a run folder that is a file or lies under one (mkdir's error says neither)."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                _fail(
                    f"run folder {str(out)!r}: {str(folder)!r} is a file, not a folder; "
                    "pick another --out or loop.out_dir"
                )
            return


def _named_in(cfg: Config, path: str) -> str:
    """Which config field names the task file ``path``, so the user knows what to edit."""
    for field in ("files", "guard_files"):
        if any(str(named) == path for named in getattr(cfg.tasks, field)):
            return f" (named in the config's tasks.{field})"
    return ""


@app.command()
def verify(
    tasks: Annotated[
        Path, typer.Argument(help="JSONL task file (selfimprove, HumanEval, MBPP or GSM8K format).")
    ],
    solutions: Annotated[
        Path, typer.Option("--solutions", "-s", help="JSONL with task_id and completion.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines only.")] = False,
) -> None:
    """Verify solutions against tasks; print a verdict per solution and a summary."""
    from selfimprove.api import verify_solutions

    try:
        verdicts = verify_solutions(tasks, solutions)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    passed = sum(v.passed for v in verdicts)
    summary = {
        "total": len(verdicts),
        "passed": passed,
        "failed": len(verdicts) - passed,
        "pass_rate": passed / len(verdicts) if verdicts else 0.0,
    }
    for v in verdicts:
        print(json.dumps(v.model_dump(), ensure_ascii=False))
    if as_json:
        print(json.dumps({"summary": summary}))
    else:
        print(f"{passed}/{len(verdicts)} passed ({summary['pass_rate']:.1%})", file=sys.stderr)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder (report, Chroma store).")] = Path(
        "runs/demo"
    ),
    config: Annotated[
        Path | None, typer.Option(help="YAML config to use instead of the demo's settings.")
    ] = None,
    heldout: Annotated[int | None, typer.Option(help="Held-out tasks per suite.")] = None,
    rounds: Annotated[
        int | None,
        typer.Option(help="Improvement rounds after the baseline (0: baseline only). [default: 2]"),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the demo in --out (automatic when one is there).")
    ] = False,
) -> None:
    """Improve the embedded student on the built-in suites (gated rounds), or just measure it."""
    from selfimprove.api import demo_config, run_baseline

    try:
        cfg = load_config(config) if config else demo_config()
    except ConfigError as exc:
        _fail(str(exc))
    cfg.loop.out_dir = out
    _check_out_dir(out)
    if rounds is not None:
        cfg.loop.rounds = rounds
    cfg.store.path = out / "store"
    if heldout is not None:
        cfg.tasks.heldout_per_suite = heldout
    if cfg.loop.rounds:
        from selfimprove.checkpoints import has_checkpoints

        if not resume and has_checkpoints(out):
            Console().print(f"continuing the demo in {out} (delete the folder to start over)")
            resume = True
        _run_loop(cfg, resume=resume)
        return
    console = Console()
    console.print(
        f"student: [bold]{cfg.student.model}[/] · suites: {', '.join(cfg.tasks.suites)} "
        f"· {cfg.tasks.heldout_per_suite} held-out tasks each"
    )
    try:
        result = run_baseline(cfg)
    except TaskFileError as exc:
        _fail(f"{exc}{_named_in(cfg, exc.path)}")
    except _USER_ERRORS as exc:
        _fail(str(exc))
    except ModelError as exc:
        _fail(str(exc), code=1)
    table = Table(title="Baseline held-out pass@1 (greedy)")
    table.add_column("suite")
    table.add_column("n", justify="right")
    table.add_column("pass@1", justify="right")
    table.add_column("by level 1-5")
    for name, score in result.eval.suites.items():
        levels = " ".join(f"{v:.0%}" for v in score.by_difficulty.values())
        table.add_row(name, str(score.n), f"{score.pass_at_1:.1%}", levels)
    table.add_row(
        "[bold]overall", str(result.eval.n_tasks), f"[bold]{result.eval.pass_at_1:.1%}", ""
    )
    console.print(table)
    console.print(
        f"model load {result.load_s:.1f}s · generation {result.eval.generate_s:.1f}s "
        f"({result.eval.completion_tokens} tokens) · verification {result.eval.verify_s:.1f}s"
    )
    console.print(
        f"stored {result.stored} new attempts ({result.store_total} in store at "
        f"{cfg.store.path}) · report {result.report_path}"
    )


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="YAML run configuration.")],
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run in loop.out_dir.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Override loop.out_dir.")] = None,
) -> None:
    """Run the gated improvement loop: collect, train, evaluate, promote only if better."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    if out is not None:
        cfg.loop.out_dir = out
    _run_loop(cfg, resume=resume)


def _run_loop(cfg: Config, *, resume: bool) -> None:
    from selfimprove.eval.report import agent_summary, spent, suite_names
    from selfimprove.loop import RunStateError, run_loop

    _check_out_dir(Path(cfg.loop.out_dir))
    # Rich wraps at 80 columns when writing to a file or pipe; the table needs ~100.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    try:
        rounds = run_loop(cfg, resume=resume, on_event=_event_printer(console, cfg.loop.out_dir))
    except TaskFileError as exc:
        _fail(f"{exc}{_named_in(cfg, exc.path)}")
    except (*_USER_ERRORS, RunStateError) as exc:
        _fail(str(exc))
    except ModelError as exc:  # a provider failed for good: not a bug, and the run is saved
        _fail(f"{exc}\n{_SAVED}", code=1)
    suites = suite_names(rounds)
    table = Table(title=f"Rounds ({cfg.loop.out_dir})")
    columns = ("round", "promoted", "held-out pass@1", *suites, "new examples", "minutes", "tokens")
    for column in columns:
        table.add_column(column, justify="left" if column in ("round", "promoted") else "right")
    for r in rounds:
        promoted = "baseline" if r.round == 0 else ("yes" if r.promoted else "no (rolled back)")
        table.add_row(
            str(r.round),
            promoted,
            f"[bold]{r.metrics['heldout_pass_at_1']:.1%}",
            *(f"{r.metrics.get(f'{s}_pass_at_1', 0.0):.1%}" for s in suites),
            str(r.counts.get("new", "")),
            f"{sum(r.timings.values()) / 60:.1f}",
            spent(r.usage),
        )
    console.print(table)
    for r in rounds[1:]:
        console.print(f"round {r.round}: " + "; ".join(r.reasons), highlight=False)
        if agents := agent_summary(r.counts):
            console.print("  agents: " + "; ".join(agents), highlight=False)
    console.print(f"report: {Path(cfg.loop.out_dir) / 'report.json'}")


def _event_printer(console: Console, out: Path) -> Callable[[str, dict[str, Any]], None]:
    """One line per event an operator acts on (the progress bars show the rest)."""

    def show(kind: str, data: dict[str, Any]) -> None:
        line = None
        if kind == "round_started":
            line = f"[bold]round {data.get('round')}[/] from {data.get('incumbent')}"
        elif kind == "gate":
            verdict = "promoted" if data.get("promoted") else "rolled back"
            score = data.get("metrics", {}).get("heldout_pass_at_1", 0.0)
            line = f"round {data.get('round')} gate: {verdict} (held-out pass@1 {score:.1%})"
        elif kind == "approval_requested":
            line = (
                f"[bold yellow]round {data.get('round')}: waiting for approval[/] of "
                f"{data.get('candidate')}; approve or reject in `selfimprove console --run {out}` "
                f"or `selfimprove chat --run {out}`"
            )
        elif kind == "approval":
            line = (
                f"promotion {'approved' if data.get('approve') else 'rejected'} by {data.get('by')}"
            )
        elif kind == "budget_exhausted":
            line = f"[bold yellow]budget spent[/]: {data.get('reason')}; the run stops here"
        elif kind == "health":
            line = (
                f"[bold yellow]paused by a health check[/]: {data.get('reason')}; resume or stop "
                f"it in `selfimprove console --run {out}` or `selfimprove chat --run {out}`"
            )
        elif kind in ("paused", "resumed", "stopped"):
            line = f"[bold]{kind}[/] by the operator"
        elif kind in ("budget", "tasks_added"):
            line = f"operator changed {kind}: " + ", ".join(f"{k}={v}" for k, v in data.items())
        if line:
            console.print(line, highlight=False)

    return show


@app.command("tasks")
def export_tasks(
    suite: Annotated[
        str, typer.Argument(help="Built-in suite: arithmetic, compare, strings, code.")
    ],
    split: Annotated[str, typer.Option(help="train or heldout.")] = "heldout",
    n: Annotated[int, typer.Option(help="Number of tasks.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed for train tasks.")] = 0,
) -> None:
    """Print tasks of a built-in suite as JSONL (the project's own format)."""
    from selfimprove.tasks import builtin_tasks

    if split not in ("train", "heldout"):
        _fail(f"--split must be 'train' or 'heldout', got {split!r}")
    chosen: Literal["train", "heldout"] = "train" if split == "train" else "heldout"
    try:
        tasks = builtin_tasks(suite, split=chosen, n=n, seed=seed)
    except ValueError as exc:
        _fail(str(exc))
    for task in tasks:
        print(task.model_dump_json())


def _register() -> None:
    from selfimprove.cli.chat import chat
    from selfimprove.cli.serve import console, serve

    app.command(help=serve.__doc__)(serve)
    app.command(help=console.__doc__)(console)
    app.command(help=chat.__doc__)(chat)


_register()


def main() -> None:
    app()
