"""What a hostile or broken program cannot do: outlive its limits, escape, read secrets.

Every test runs against both isolation modes (the ``pool`` fixture is parametrized),
except where a test builds its own pool. Checks that only hold when the child runs
under a different uid are skipped in the weakest mode (non-root without namespaces).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from selfimprove.config import SandboxConfig
from selfimprove.sandbox import SandboxPool

from .conftest import FAST, TIGHT, same_uid_without_namespaces, sandbox_uid_processes

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


@pytest.mark.parametrize("code", ["while True: pass", "import time\ntime.sleep(60)"])
def test_wall_timeout_kills_the_run_and_the_pool_goes_on(pool, code):
    start = time.monotonic()
    result = pool.run(code, timeout_s=1.0)
    assert time.monotonic() - start < 2.0
    assert result.status == "timeout" and result.exit_code is None
    assert result.reason == "timeout after 1s"
    assert pool.run("print('still here')").stdout == "still here\n"


def test_cpu_time_limit_stops_a_spin(tight_pool):
    result = tight_pool.run("x = 0\nwhile True:\n    x += 1")
    assert result.status == "timeout"
    assert result.reason == f"cpu time limit ({TIGHT.cpu_time_s}s) exceeded"


@pytest.mark.parametrize(
    "code", ["x = bytearray(1 << 31)", "a = []\nwhile True:\n    a.append(bytearray(1 << 20))"]
)
def test_memory_bomb_hits_the_memory_limit(tight_pool, code):
    result = tight_pool.run(code)
    assert result.status == "memory"
    assert result.reason == f"memory limit ({TIGHT.memory_mb} MB) exceeded"
    assert "MemoryError" in result.stderr
    assert tight_pool.run("print(1)").ok


def test_process_cap_holds(pool):
    code = textwrap.dedent(
        """
        import os, time
        forked = 0
        for _ in range(50):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(5)
                os._exit(0)
            forked += 1
        print(forked)
        """
    )
    result = pool.run(code)
    assert result.ok, result.reason
    # max_processes counts the program itself.
    assert int(result.stdout) == FAST.max_processes - 1


def test_fork_bomb_is_contained(pool):
    uid = pool.isolation["uid"]
    before = sandbox_uid_processes(uid)
    result = pool.run(FORK_BOMB, timeout_s=1.0)
    assert not result.ok
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork
    assert pool.run("print(1)").ok
    if uid != os.getuid():
        assert sandbox_uid_processes(uid) <= before  # nothing left running


def test_background_processes_do_not_outlive_the_run(pool):
    uid = pool.isolation["uid"]
    if uid == os.getuid():
        pytest.skip("the sandbox shares our uid, so its processes cannot be told apart")
    before = sandbox_uid_processes(uid)
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('main done')"
    result = pool.run(code)
    assert result.ok and result.stdout == "main done\n"
    assert sandbox_uid_processes(uid) <= before


def test_cannot_write_outside_its_directory(pool, tmp_path):
    if same_uid_without_namespaces(pool):
        pytest.skip("without namespaces a same-uid child can write the caller's files")
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    project_file = Path(__file__)
    original_test = project_file.read_bytes()
    code = textwrap.dedent(
        f"""
        for path, mode in [({str(victim)!r}, "w"), ({str(project_file)!r}, "a")]:
            try:
                with open(path, mode) as f:
                    f.write("pwned")
                print("WROTE", path)
            except OSError as exc:
                print("blocked", type(exc).__name__)
        open("mine.txt", "w").write("fine")  # its own directory is writable
        """
    )
    result = pool.run(code)
    assert result.ok, result.reason
    assert "WROTE" not in result.stdout
    assert result.stdout.count("blocked") == 2
    assert victim.read_text() == "original"
    assert project_file.read_bytes() == original_test


def test_file_size_limit(pool):
    result = pool.run(
        f"with open('big', 'wb') as f:\n    f.write(b'x' * {2 * FAST.max_file_bytes})"
    )
    assert result.status == "error"
    assert "File too large" in result.reason


SCRATCH = FAST.max_file_bytes + (16 << 20)  # what a run may keep on disk in all


@pytest.mark.parametrize("size", [1 << 20, 0], ids=["1MiB_files", "empty_files"])
def test_filling_the_disk_is_capped(pool, size):
    # Many files, each under the per-file cap: the total and the file count are capped.
    code = textwrap.dedent(
        f"""
        total = 0
        for i in range(100_000):
            with open(f"f{{i}}", "wb") as f:
                f.write(b"x" * {size})
            total += {size}
            if i % 50 == 0:
                print(i, total, flush=True)
        """
    )
    result = pool.run(code, timeout_s=10)
    assert not result.ok
    if pool.isolation["mode"] == "namespaces":  # the capped tmpfs refuses the write
        assert result.status == "error" and "No space left on device" in result.reason
    else:  # the worker measures the directory and ends the run
        assert result.status == "disk_limit", result.reason
        assert "disk use over" in result.reason
    files, written = map(int, result.stdout.split()[-2:])
    # basic mode overshoots by what the run writes between two measurements
    assert files < 2 * 10_000 and written <= SCRATCH + (64 << 20)
    assert pool.run("print('next')").stdout == "next\n"


def test_no_network(pool):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = textwrap.dedent(
            f"""
            import socket
            for attempt in ("connect", "dns"):
                try:
                    if attempt == "connect":
                        socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
                    else:
                        socket.getaddrinfo("example.com", 80)
                    print("REACHED", attempt)
                except Exception as exc:
                    print("blocked", attempt, type(exc).__name__)
            """
        )
        result = pool.run(code)
        assert result.ok, result.reason
        assert "REACHED" not in result.stdout
        assert result.stdout.count("blocked") == 2
        with pytest.raises(BlockingIOError):
            server.accept()


def test_host_daemon_sockets_are_hidden(pool):
    if pool.isolation["mode"] != "namespaces" or not os.access("/run", os.W_OK):
        pytest.skip("needs namespace mode and a writable /run to plant a socket")
    path = f"/run/selfimprove-test-{os.getpid()}.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        try:
            server.listen()
            os.chmod(path, 0o666)  # even a socket anyone may connect to
            code = f"import socket\nsocket.socket(socket.AF_UNIX).connect({path!r})"
            result = pool.run(code)
        finally:
            os.unlink(path)
    assert result.status == "error"
    assert "FileNotFoundError" in result.reason


def test_network_can_be_allowed():
    with (
        socket.socket() as server,
        SandboxPool(SandboxConfig(workers=1, allow_network=True)) as open_pool,
    ):
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = open_pool.run(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port})).close()"
        )
        assert result.ok, result.reason


@pytest.mark.parametrize("isolation", ["auto", "basic"])
def test_secrets_in_the_environment_are_not_readable(monkeypatch, isolation):
    secret = "sk-test-" + os.urandom(8).hex()
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    # A process started with the key in its initial environment, as a shell would.
    holder = subprocess.Popen(["sleep", "30"], env={**os.environ, "OPENAI_API_KEY": secret})
    code = textwrap.dedent(
        f"""
        import os
        if any({secret!r} in v for v in os.environ.values()) or "OPENAI_API_KEY" in os.environ:
            print("LEAK os.environ")
        for pid in [*os.listdir("/proc"), "{os.getpid()}", "{holder.pid}"]:
            try:
                with open(f"/proc/{{pid}}/environ", "rb") as f:
                    if {secret!r}.encode() in f.read():
                        print("LEAK /proc", pid)
            except OSError:
                pass
        print("done")
        """
    )
    try:
        with SandboxPool(SandboxConfig(workers=1), isolation=isolation) as env_pool:
            result = env_pool.run(code)
            weak = same_uid_without_namespaces(env_pool)
    finally:
        holder.kill()
        holder.wait()
    assert result.ok, result.reason
    assert "LEAK os.environ" not in result.stdout
    if not weak:  # a same-uid child without namespaces can read /proc/<pid>/environ
        assert "LEAK" not in result.stdout


def test_huge_output_is_capped(pool):
    for stream in ("sys.stdout", "sys.stderr"):
        start = time.monotonic()
        result = pool.run(f"import sys\nwhile True:\n    {stream}.write('x' * 10000)")
        assert time.monotonic() - start < 2.0
        assert result.status == "output_limit"
        assert len(result.stdout) + len(result.stderr) <= FAST.max_output_bytes
        assert result.reason == f"output over {FAST.max_output_bytes} bytes"


@pytest.mark.parametrize("isolation", ["auto", "basic"])
def test_each_run_gets_a_fresh_temp_dir_that_is_removed(isolation):
    show = "import os, json\nprint(json.dumps([os.getcwd(), os.listdir('.'), os.environ['HOME']]))"
    with SandboxPool(SandboxConfig(workers=1), isolation=isolation) as one:
        first = one.run(show + "\nopen('left.txt', 'w').write('x')")
        cwd, listing, home = json.loads(first.stdout)
        assert listing == [] and home == cwd
        second = one.run(f"import os\n{show}\nprint(os.path.exists({cwd!r}))")
    cwd2, listing2, _ = json.loads(second.stdout.splitlines()[0])
    assert cwd2 != cwd and listing2 == []
    assert second.stdout.splitlines()[1] == "False"
    assert not os.path.exists(cwd)


def test_runs_do_not_share_state(pool):
    results = pool.map(["import json\nassert not hasattr(json, 'MARK')\njson.MARK = 1"] * 6)
    assert all(r.ok for r in results)


def test_signalling_the_worker_does_not_break_the_pool(pool):
    pool.run(
        "import os, signal\nfor pid in (1, os.getppid()):\n    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass"
    )
    assert all(r.ok for r in pool.map(["print(1)"] * 4))


def _reachable_by_nobody(path: str) -> bool:
    path = os.path.realpath(path)
    while path != "/":
        if not os.stat(path).st_mode & 0o001:
            return False
        path = os.path.dirname(path)
    return True


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to start a process as another user")
@pytest.mark.skipif(
    not _reachable_by_nobody(sys.executable), reason="this Python is not reachable by 'nobody'"
)
def test_works_without_root():
    import pydantic

    script = textwrap.dedent(
        """
        import json
        from selfimprove.sandbox import SandboxPool
        with SandboxPool() as pool:
            ok = pool.run("assert 1 + 1 == 2").ok
            forks = pool.run("import os\\nwhile True:\\n    os.fork()", timeout_s=1).status
            print(json.dumps({"isolation": pool.isolation, "ok": ok, "forks": forks}))
        """
    )
    paths = [str(Path(__file__).parents[2]), str(Path(pydantic.__file__).parents[1])]
    done = subprocess.run(
        [sys.executable, "-c", script],
        user=65534, group=65534, extra_groups=[], capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": os.pathsep.join(paths), "HOME": "/tmp"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["ok"] and report["forks"] != "ok"
