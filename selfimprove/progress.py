"""Rich progress bars and spinners for long steps, as tiny context managers.

``with progress_bar("generating", total=400) as advance: ...; advance(16)``;
``with spinner("loading student"): ...`` for steps without a count.
Both render live on a terminal and print a final line elsewhere (CI). A bar
also sends ``progress`` events (at most one a second, and the last) to the run's
event stream (``selfimprove.events``), whether or not it is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from selfimprove.events import Throttle, emit


@contextmanager
def progress_bar(
    description: str, total: int, *, console: Console | None = None, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` units; yields ``advance(n)``."""
    done = 0
    throttle = Throttle()

    def report(n: int) -> None:
        nonlocal done
        done += n
        if throttle(final=done >= total):
            emit("progress", step=description, done=done, total=total)

    if not enabled:
        yield report
        return
    console = console or Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)
            report(n)

        yield advance
        bar.update(task, completed=total)


@contextmanager
def spinner(
    description: str, *, console: Console | None = None, enabled: bool = True
) -> Iterator[None]:
    """A spinner with elapsed time for a step whose length is unknown."""
    if not enabled:
        yield
        return
    console = console or Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=1)
        yield
        bar.update(task, completed=1)
