"""The Postgres checkpointer (``loop.checkpointer: postgres``) against a throwaway cluster.

A module fixture makes a cluster with ``initdb`` in a temporary folder and starts
``postgres`` on a Unix socket there (no TCP port to collide on); each test gets a
database of its own in it. Postgres refuses to run as root, so as root the cluster
belongs to an unprivileged user (``postgres``, else ``nobody``). Skipped without the
PostgreSQL server binaries (Debian: ``apt-get install postgresql``), and outside CI
without the ``postgres`` extra; under CI a missing extra fails.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from selfimprove.checkpoints import SQLITE_FILE, THREAD_FILE, open_checkpoints
from selfimprove.config import Config, ConfigError, LoopConfig, is_ci, load_config
from selfimprove.loop import RunStateError
from selfimprove.runs import Run
from selfimprove.testing.runs import start_scripted_run

_NO_SERVER = "no PostgreSQL server binaries (initdb, pg_ctl); on Debian: apt-get install postgresql"
USER = "selfimprove"  # the cluster's superuser; trust authentication on its socket only
_names = itertools.count()


def _binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres (Debian keeps them off PATH)."""
    found = shutil.which("initdb")
    folders = [Path(found).resolve().parent] if found else []
    folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((f for f in folders if all((f / n).exists() for n in ("pg_ctl", "postgres"))), None)


def _owner() -> pwd.struct_passwd | None:
    """Who runs the server: this user, or an unprivileged one when this is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and no 'postgres' or 'nobody' user to run the server as")


def _run(cmd: list[str], owner: pwd.struct_passwd | None, cwd: Path) -> None:
    as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, **as_owner)
    if done.returncode != 0:
        log = cwd / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        pytest.fail(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}"
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    """A running throwaway cluster; yields the folder of its Unix socket."""
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip(_NO_SERVER)
    missing = [m for m in ("psycopg", "langgraph.checkpoint.postgres") if not _importable(m)]
    if missing:
        reason = f"{', '.join(missing)} missing: pip install 'selfimprove[postgres]'"
        if is_ci():
            pytest.fail(f"the dev extra CI installs has the postgres extra; {reason}")
        pytest.skip(reason)
    owner = _owner()
    if owner:  # its user cannot reach pytest's folders, private to root
        base = Path(tempfile.mkdtemp(prefix="selfimprove-pg-", dir="/tmp"))
        os.chown(base, owner.pw_uid, owner.pw_gid)
    else:
        base = tmp_path_factory.mktemp("postgres")
    data, pg_ctl = str(base / "data"), str(bin_dir / "pg_ctl")
    settings = (
        f"-c listen_addresses='' -c unix_socket_directories='{base}' "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    started = False
    try:
        initdb = [str(bin_dir / "initdb"), "-D", data, "-U", USER, "--auth=trust", "--no-sync"]
        _run([*initdb, "--encoding=UTF8", "--locale=C"], owner, base)
        log = str(base / "server.log")
        _run(
            [pg_ctl, "-D", data, "-l", log, "-o", settings, "-w", "-t", "30", "start"], owner, base
        )
        started = True
        yield str(base)
    finally:
        if started:
            _run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], owner, base)
        if owner:
            shutil.rmtree(base, ignore_errors=True)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture
def postgres_url(cluster) -> str:
    """A new, empty database in the cluster: the URL a shared deployment would configure."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(f"host={cluster} user={USER} dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://{USER}@/{name}?host={quote(cluster, safe='')}"


def _until(run: Run, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run.status()
        if predicate(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status {status}")


def _outcome(out: Path) -> tuple[list, set[str]]:
    """The rounds (gate decisions, metrics, counts) and the stored example ids."""
    run = Run(out)
    rounds = [(r.round, r.promoted, r.metrics, r.counts) for r in run.rounds()]
    return rounds, {e.id for e in run.store.find()}


def _thread(out: Path) -> str:
    return json.loads((out / THREAD_FILE).read_text())["thread_id"]


def _checkpoint(url: str, thread_id: str) -> dict:
    """The latest checkpointed state of ``thread_id``, read straight from the database."""
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(url) as saver:
        found = saver.get_tuple({"configurable": {"thread_id": thread_id}})
    assert found is not None, f"no checkpoint of {thread_id!r}"
    return found.checkpoint["channel_values"]


# -- config: no server needed -------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "expected"),
    [
        ("checkpointer: postgres\n", "needs one of loop.postgres_url and loop.postgres_url_env"),
        (
            "checkpointer: postgres\n  postgres_url: postgresql://a@h/d\n  postgres_url_env: X\n",
            "got both",
        ),
        ("postgres_url: postgresql://me:hunter2@db/x\n", "holds a password"),
        ("postgres_url: host=db password=hunter2\n", "holds a password"),
        ("checkpointer: mysql\n", "loop.checkpointer = 'mysql'"),
    ],
)
def test_bad_checkpointer_settings_name_the_field(tmp_path, loop, expected):
    path = tmp_path / "run.yaml"
    path.write_text("loop:\n  " + loop)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_a_refused_url_is_not_echoed(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loop:\n  postgres_url: postgresql://me:hunter2@db/x\n")
    with pytest.raises(ConfigError, match="holds a password") as refused:
        load_config(path)
    assert "hunter2" not in str(refused.value) and "not shown" in str(refused.value)


def test_postgres_settings_that_load(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("loop:\n  checkpointer: postgres\n  postgres_url_env: SELFIMPROVE_PG_URL\n")
    assert load_config(path).loop.postgres_url_env == "SELFIMPROVE_PG_URL"
    assert Config().loop.checkpointer == "sqlite"  # the default is unchanged


def test_an_unset_url_variable_or_a_missing_extra_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_PG_URL", raising=False)
    loop = LoopConfig(checkpointer="postgres", postgres_url_env="SELFIMPROVE_PG_URL")
    with (
        pytest.raises(ConfigError, match=r"\$SELFIMPROVE_PG_URL, which is unset"),
        open_checkpoints(loop, tmp_path, resume=False),
    ):
        pass
    monkeypatch.setitem(sys.modules, "langgraph.checkpoint.postgres", None)  # import fails
    loop = LoopConfig(checkpointer="postgres", postgres_url="postgresql://a@localhost/d")
    with (
        pytest.raises(ConfigError, match=r"pip install 'selfimprove\[postgres\]'"),
        open_checkpoints(loop, tmp_path, resume=False),
    ):
        pass
    assert not (tmp_path / THREAD_FILE).exists()


def test_an_unreachable_database_is_named_without_its_password(tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    monkeypatch.setenv("SELFIMPROVE_PG_URL", "postgresql://me:hunter2@/d?host=/nonexistent")
    loop = LoopConfig(checkpointer="postgres", postgres_url_env="SELFIMPROVE_PG_URL")
    with (
        pytest.raises(RunStateError, match="cannot use the checkpoint database") as info,
        open_checkpoints(loop, tmp_path, resume=False),
    ):
        pass
    assert "hunter2" not in str(info.value) and "/nonexistent" in str(info.value)


# -- against the cluster ------------------------------------------------------------------


def test_a_scripted_run_finishes_checkpointed_in_postgres(tmp_path, postgres_url):
    start_scripted_run(tmp_path, rounds=2, checkpointer="postgres", postgres_url=postgres_url).wait(
        30
    )
    run = Run(tmp_path)
    assert run.status().state == "finished"
    assert [r.round for r in run.rounds()] == [0, 1, 2]
    assert not (tmp_path / SQLITE_FILE).exists()
    state = _checkpoint(postgres_url, _thread(tmp_path))
    assert state["round"] == 3 and len(state["records"]) == 3


def test_a_stopped_run_resumes_from_postgres_and_matches_an_uninterrupted_one(
    tmp_path, postgres_url
):
    pg = {"checkpointer": "postgres", "postgres_url": postgres_url}
    out, reference = tmp_path / "run", tmp_path / "reference"
    run = Run(out)
    handle = start_scripted_run(out, rounds=3, step_s=0.2, **pg)
    _until(run, lambda s: s.rounds_done >= 1)
    run.stop()
    handle.wait(30)
    assert run.status().state == "stopped"
    assert len(run.rounds()) < 4
    start_scripted_run(out, rounds=3, resume=True, **pg).wait(30)
    assert run.status().state == "finished"
    start_scripted_run(reference, rounds=3, **pg).wait(30)
    rounds, ids = _outcome(out)
    assert [r[0] for r in rounds] == [0, 1, 2, 3]
    assert (rounds, ids) == _outcome(reference)  # nothing lost or stored twice
    assert len(run.events(kinds={"run_started"})) == 2


def test_run_folders_sharing_a_database_keep_their_own_threads(tmp_path, postgres_url):
    pg = {"checkpointer": "postgres", "postgres_url": postgres_url}
    a, b = tmp_path / "a", tmp_path / "b"
    handles = [start_scripted_run(a, rounds=2, **pg), start_scripted_run(b, rounds=1, **pg)]
    for handle in handles:  # at the same time, on one database
        handle.wait(30)
    assert _thread(a) != _thread(b)
    assert [r.round for r in Run(a).rounds()] == [0, 1, 2]
    assert [r.round for r in Run(b).rounds()] == [0, 1]
    # a shared thread would have added one run's records to the other's
    assert len(_checkpoint(postgres_url, _thread(a))["records"]) == 3
    assert len(_checkpoint(postgres_url, _thread(b))["records"]) == 2

    # resuming b with a larger budget continues b alone
    Run(b).set_budget(rounds=2)
    start_scripted_run(b, rounds=1, resume=True, **pg).wait(30)
    assert [r.round for r in Run(b).rounds()] == [0, 1, 2]
    assert _checkpoint(postgres_url, _thread(a))["round"] == 3  # a untouched
    assert [r.round for r in Run(a).rounds()] == [0, 1, 2]

    # a folder is resumed from its own thread only; a new run never reuses one
    with pytest.raises(RunStateError, match="a run already exists"):
        start_scripted_run(a, rounds=2, **pg).wait(30)
    with pytest.raises(RunStateError, match="nothing to resume"):
        start_scripted_run(tmp_path / "c", rounds=1, resume=True, **pg).wait(30)


def test_a_run_outlives_a_dropped_database_connection(tmp_path, postgres_url, cluster):
    import psycopg

    run = Run(tmp_path)
    run.pause()  # it stops at its first step boundary; drop its connection there
    handle = start_scripted_run(
        tmp_path, rounds=2, checkpointer="postgres", postgres_url=postgres_url
    )
    _until(run, lambda s: s.last_event is not None and s.last_event.kind == "paused")
    database = psycopg.conninfo.conninfo_to_dict(postgres_url)["dbname"]
    with psycopg.connect(f"host={cluster} user={USER} dbname=postgres", autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        ).fetchall()
    assert dropped  # as a server restart or an idle timeout would
    run.resume()
    handle.wait(30)
    assert run.status().state == "finished"
    assert [r.round for r in run.rounds()] == [0, 1, 2]
