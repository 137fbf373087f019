"""``selfimprove chat``: talk to a run from the terminal.

    selfimprove chat --run runs/demo                          # slash commands: /help, /status, ...
    selfimprove chat --run runs/demo --model openai/gpt-4o-mini  # free text for an LLM operator

Each line goes to ``selfimprove.console.operator.Operator``; replies are printed
as markdown. Ctrl-D, Ctrl-C, ``/quit`` or ``/exit`` leave (exit status 0). The
operator model comes from ``--model``, else ``console.operator`` of ``--config``,
else of the run's own ``config.json``; without one, slash commands still work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from selfimprove.config import Config
    from selfimprove.console.operator import Operator
    from selfimprove.runs import Run

QUIT = ("/quit", "/exit")


def chat(
    run: Annotated[Path, typer.Option("--run", help="The run folder to read and steer.")] = Path(
        "runs/demo"
    ),
    config: Annotated[
        Path | None,
        typer.Option(help="YAML config whose console.operator picks the operator model."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="litellm model for free text, e.g. openai/gpt-4o-mini."),
    ] = None,
) -> None:
    """Chat with a run: slash commands (/help), and free text for the operator model."""
    from rich.console import Console

    from selfimprove.config import ConfigError
    from selfimprove.runs import Run

    console = Console()
    try:
        settings = _config(run, config)
    except ConfigError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if model:
        settings.console.operator.model = model
    target = Run(run)
    operator = _operator(target, settings, console)
    llm = settings.console.operator.model if operator.model is not None else None
    console.print(
        f"selfimprove chat · run [bold]{run}[/] ({target.status().state}) · operator model: "
        f"{llm or 'none (slash commands only)'} · /help for commands, /quit to leave",
        highlight=False,
        soft_wrap=True,
    )
    _repl(operator, console)


def _repl(operator: Operator, console: Console) -> None:
    from rich.markdown import Markdown

    while True:
        try:
            line = input("you> ").strip()
            if line.lower() in QUIT:
                return
            if not line:
                continue
            try:
                answer = operator.reply(line)
            except Exception as exc:  # a bug in one reply should not end the session
                console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False)
                continue
            console.print(Markdown(answer))
        except (EOFError, KeyboardInterrupt):
            console.print()
            return


def _config(run: Path, path: Path | None) -> Config:
    from selfimprove.cli.serve import run_config
    from selfimprove.config import Config, ConfigError

    try:
        return run_config(run, path)
    except ConfigError:
        if path is not None:
            raise
        return Config()  # an older or damaged config.json: the defaults still give slash commands


def _operator(run: Run, config: Config, console: Console) -> Operator:
    from selfimprove.console.operator import Operator, make_operator
    from selfimprove.models.base import ModelError

    try:
        return make_operator(run, config)
    except ModelError as exc:
        console.print(
            f"[yellow]no operator model:[/] {exc}; slash commands still work",
            highlight=False,
            soft_wrap=True,
        )
        return Operator(run)
