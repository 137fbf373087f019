"""Where the round graph's checkpoints live (``loop.checkpointer``).

    with open_checkpoints(config.loop, out, resume=False) as checkpoints:
        graph = build_round_graph(deps, checkpointer=checkpoints.saver)
        drive(graph, start, config, thread_id=checkpoints.thread_id)

- ``sqlite`` (the default): ``<out>/checkpoints.sqlite``, one file per run folder, the
  graph on the thread ``"run"``.
- ``postgres``: one database that many run folders (and hosts) share, at
  ``loop.postgres_url`` or the URL in the variable ``loop.postgres_url_env``; the
  tables are created on first use. Each run folder has its own thread: a new run
  draws an id (``<folder name>-<uuid4 hex>``) and keeps it in ``<out>/checkpoints.json``,
  and resuming reads it back. The id travels with the folder rather than its path, so
  two hosts with the same path do not collide and a moved folder resumes; a copied
  folder carries its original's id, so resume only one of the two. Needs the
  ``postgres`` extra (``pip install 'selfimprove[postgres]'``).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.config import ConfigError, LoopConfig, secret
from selfimprove.files import write_text_atomic
from selfimprove.loop import THREAD, RunStateError

SQLITE_FILE = "checkpoints.sqlite"
THREAD_FILE = "checkpoints.json"
# One process at a time creates or migrates the tables (several runs may start at once
# on a new database); waiting gives up after SETUP_WAIT_S.
_SETUP_LOCK = "SELECT pg_try_advisory_lock(hashtext('selfimprove.checkpoints.setup')) AS got"
_SETUP_UNLOCK = "SELECT pg_advisory_unlock(hashtext('selfimprove.checkpoints.setup'))"
SETUP_WAIT_S = 300.0


@dataclass(frozen=True)
class Checkpoints:
    """A LangGraph checkpointer and the thread this run's graph lives on."""

    saver: Any  # a langgraph BaseCheckpointSaver
    thread_id: str  # what loop.drive streams the graph on


def has_checkpoints(out: str | Path) -> bool:
    """Whether a run was started in ``out``: its ``checkpoints.sqlite``, or the
    ``checkpoints.json`` naming its thread in a Postgres database."""
    return (Path(out) / SQLITE_FILE).exists() or (Path(out) / THREAD_FILE).exists()


@contextmanager
def open_checkpoints(loop: LoopConfig, out: Path, *, resume: bool) -> Iterator[Checkpoints]:
    """The run folder ``out``'s checkpoints in the store ``loop.checkpointer`` names.

    Raises:
        ConfigError: postgres without a URL, its variable unset, or the extra missing.
        RunStateError: postgres and ``resume`` with no checkpoint of this run in the
            database, or a new run where one is; or the database cannot be reached.
    """
    if loop.checkpointer == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(out / SQLITE_FILE, check_same_thread=False)
        try:
            yield Checkpoints(SqliteSaver(conn), THREAD)
        finally:
            conn.close()
        return
    url = _postgres_url(loop)
    with _postgres_saver(url) as saver:
        yield Checkpoints(saver, _thread_id(saver, out, _shown(url), resume=resume))


def _postgres_url(loop: LoopConfig) -> str:
    """The checkpoint database's URL: ``loop.postgres_url``, else ``$<loop.postgres_url_env>``."""
    if loop.postgres_url:
        return loop.postgres_url
    if not loop.postgres_url_env:
        raise ConfigError(
            "loop.checkpointer 'postgres' needs loop.postgres_url (or loop.postgres_url_env "
            "naming a variable that holds the URL), got neither"
        )
    url = secret(loop.postgres_url_env)
    if url is None:
        raise ConfigError(
            f"loop.postgres_url_env names ${loop.postgres_url_env}, which is unset or empty; "
            "export the checkpoint database's URL in it, "
            "e.g. postgresql://selfimprove:PASSWORD@db.internal:5432/selfimprove"
        )
    return url


def _shown(url: str) -> str:
    """``url`` without its password, to name the database in messages and files."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except Exception:  # psycopg.ProgrammingError; the connect call will say what is wrong
        return "(an unparsable connection string)"
    params.pop("password", None)
    return make_conninfo(**{k: str(v) for k, v in params.items()})


@contextmanager
def _postgres_saver(url: str) -> Iterator[Any]:
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool
    except ImportError as exc:  # a module missing, or psycopg without its libpq binding
        raise ConfigError(
            f"loop.checkpointer 'postgres' needs the postgres extra ({exc.name or exc}): "
            "pip install 'selfimprove[postgres]'"
        ) from None
    # What PostgresSaver needs of a connection (its from_conn_string passes the same).
    settings = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    try:  # first on a connection of its own: a bad URL or a missing right fails here, clearly
        with psycopg.Connection.connect(url, **settings) as conn:
            _setup(conn, PostgresSaver(conn))
    except psycopg.Error as exc:
        raise RunStateError(
            f"cannot use the checkpoint database {_shown(url)!r} (loop.postgres_url): "
            f"{str(exc).strip()}"
        ) from None
    # Then a pool of one that checks its connection before each use: a run outlives a
    # connection that a server restart or an idle timeout drops, and a failed checkpoint
    # write would cost the step just done (a whole training stage).
    pool = ConnectionPool(
        url,
        kwargs=settings,
        min_size=1,
        max_size=1,
        open=False,
        check=ConnectionPool.check_connection,
        name="selfimprove-checkpoints",
    )
    with pool:
        yield PostgresSaver(pool)


def _setup(conn: Any, saver: Any) -> None:
    """``saver.setup()`` (create or migrate the tables; quick once they are current), one
    process at a time. It polls for the lock: a session blocked in ``pg_advisory_lock``
    would deadlock with the lock holder's ``CREATE INDEX CONCURRENTLY``, which waits for
    every transaction open when it starts."""
    deadline = time.monotonic() + SETUP_WAIT_S
    while not conn.execute(_SETUP_LOCK).fetchone()["got"]:
        if time.monotonic() > deadline:
            raise RunStateError(
                f"another process has been creating the checkpoint tables for {SETUP_WAIT_S:.0f} "
                "s; see pg_stat_activity for what it waits on"
            )
        time.sleep(0.1)
    try:
        saver.setup()
    finally:
        conn.execute(_SETUP_UNLOCK)


def _thread_id(saver: Any, out: Path, database: str, *, resume: bool) -> str:
    """This run folder's thread in the shared database (see the module docstring)."""
    path = out / THREAD_FILE
    if path.exists():
        try:
            thread_id = str(json.loads(path.read_text())["thread_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RunStateError(
                f"{str(path)!r} is damaged ({type(exc).__name__}: {exc}); it names the run's "
                'thread in the checkpoint database: {"thread_id": "..."}'
            ) from None
    elif resume:
        raise RunStateError(
            f"nothing to resume in {str(out)!r}: no {THREAD_FILE} there, so its run was "
            "not checkpointed in Postgres (loop.checkpointer)"
        )
    else:
        thread_id = f"{out.resolve().name}-{uuid.uuid4().hex}"
        record = {"checkpointer": "postgres", "thread_id": thread_id, "database": database}
        write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    started = saver.get_tuple({"configurable": {"thread_id": thread_id}}) is not None
    if resume and not started:
        raise RunStateError(
            f"nothing to resume in {str(out)!r}: its thread {thread_id!r} has no checkpoint "
            f"in {database!r}; is loop.postgres_url the database the run started in?"
        )
    if started and not resume:
        raise RunStateError(
            f"a run already exists in {str(out)!r} (thread {thread_id!r} in {database!r}); "
            "resume it, or pick another out_dir"
        )
    return thread_id
