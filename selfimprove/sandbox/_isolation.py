"""Kernel-level isolation for the sandbox worker: namespaces, mounts, the uid to use.

Stdlib only: this module runs inside the worker process (``_worker.py``, started
as ``python -I -S``), never in the caller.

* ``setup(spec)`` runs once when a worker starts. It tries to put the worker in
  fresh user, PID, mount, network, IPC and UTS namespaces (``_enter_namespaces``)
  and falls back to plain rlimits (``_basic``) when the kernel refuses. It returns
  a ``Jail`` that says what was achieved.
* ``_confine.confine`` (a separate file) runs in each forked child just before
  the model's code: rlimits, dropped privileges, the run's environment.

Linux only (ctypes calls into libc for unshare, mount, prctl and capset).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from dataclasses import dataclass, field
from typing import NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
# statvfs flags -> mount flags: a bind remount inside a user namespace must repeat
# the locked flags (nosuid, nodev, ...) or the kernel refuses it with EPERM.
_ST_TO_MS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
NOBODY = 65534
# Files and directories a run may create in its scratch space (every mode).
MAX_SCRATCH_FILES = 10_000
# Writable scratch space: a fresh tmpfs per run on each of these (namespace mode).
SCRATCH_DIRS = ("/tmp", "/dev/shm")
# Covered by an empty read-only tmpfs (namespace mode): daemons' Unix sockets live
# here (docker, dbus), and a socket's mode, not a read-only mount, guards connect().
HIDDEN_DIRS = ("/run",)
MAX_OPEN_FILES = 256
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass
class Jail:
    """What the worker achieved at start-up; decides how each child is confined.

    Attributes:
        namespaces: the worker is PID 1 of its own user/PID/mount/IPC/UTS namespaces.
        network: "netns" (empty network namespace), "audit-hook" (Python-level
            block only) or "allowed".
        run_uid: uid the child switches to (root only), else None (keeps its uid).
        drop_caps: clear the capability sets in the child (non-root namespace mode).
        nproc_base: processes already counted against RLIMIT_NPROC for the child's uid.
        readonly_fs: every mount outside the scratch tmpfs is read-only for the child.
        private_proc: /proc shows only the worker's PID namespace.
        path_fds: sys.path entry -> O_PATH fd, for entries the child cannot reach by
            name (e.g. a stdlib under 0700 /root); the child imports via /proc/self/fd.
        notes: why something weaker was used.
    """

    namespaces: bool = False
    network: str = "allowed"
    run_uid: int | None = None
    drop_caps: bool = False
    nproc_base: int = 0
    readonly_fs: bool = False
    private_proc: bool = False
    path_fds: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """A JSON-able summary the pool reports as ``SandboxPool.isolation``."""
        return {
            "mode": "namespaces" if self.namespaces else "basic",
            "network": self.network,
            "uid": self.run_uid if self.run_uid is not None else os.getuid(),
            "readonly_fs": self.readonly_fs,
            "private_proc": self.private_proc,
            "notes": list(self.notes),
        }


def check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    ret = LIBC.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data))
    check(ret, f"mount {target!r}")


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (and exit now if it already has)."""
    parent = os.getppid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def close_fds(keep: tuple[int, ...] = ()) -> None:
    """Close every fd from 3 up except ``keep`` (close_range: no /proc needed)."""
    low = 3
    for fd in sorted(k for k in keep if k >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 20))


def prctl(option: int, value: int) -> None:
    check(LIBC.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def mount_scratch(size_bytes: int, max_files: int) -> None:
    """Mount a fresh tmpfs capped at ``size_bytes`` and ``max_files`` inodes on each
    scratch dir (namespace mode, per run)."""
    options = f"size={size_bytes},nr_inodes={max_files},mode=1777"
    for path in SCRATCH_DIRS:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)


def unmount_scratch() -> None:
    """Detach the per-run tmpfs mounts: every file the run wrote there is gone."""
    for path in SCRATCH_DIRS:
        LIBC.umount2(path.encode(), MNT_DETACH)


def setup(spec: dict) -> Jail:
    """Isolate the worker as far as the kernel allows; see the module docstring.

    Args:
        spec: the worker spec (``isolation``, ``allow_network``, limits).

    Returns:
        The ``Jail`` that was achieved. In namespace mode this returns in a new
        process (PID 1 of the new PID namespace); the original process only waits.
    """
    # The pool starts us with a minimal environment; make sure of it anyway.
    os.environ.clear()
    os.environ.update(BASE_ENV)
    notes: list[str] = []
    jail = None
    if spec.get("isolation", "auto") == "auto":
        try:
            jail = _enter_namespaces(spec)
        except OSError as exc:
            notes.append(f"namespaces unavailable ({exc}); using rlimits and uid only")
    else:
        notes.append("namespaces disabled by isolation='basic'")
    jail = jail or _basic(spec, notes)
    if jail.run_uid is not None:
        _reroute_imports(jail)
    return jail


def _enter_namespaces(spec: dict) -> Jail:
    """Fork a child that unshares all namespaces; this process writes its id maps.

    Only a process in the parent user namespace may write a map other than its
    own single uid, so the parent writes the child's maps (as newuidmap does).
    The child then forks PID 1 of the new PID namespace, which becomes the worker.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if not spec["allow_network"]:
        flags |= CLONE_NEWNET
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        die_with_parent()
        os.close(ready_r)
        os.close(go_w)
        err = 0 if LIBC.unshare(flags) == 0 else ctypes.get_errno()
        os.write(ready_w, err.to_bytes(4, "big"))
        if err or os.read(go_r, 1) != b"g":
            os._exit(0)
        try:
            return _become_init(spec, uid, gid)
        except BaseException as exc:  # noqa: BLE001
            # Half inside the namespaces: falling back to basic mode here would be
            # wrong, so fail the worker start and say why.
            print(f"sandbox worker set-up failed: {exc!r}", file=sys.stderr)
            os._exit(1)
    os.close(ready_w)
    os.close(go_r)
    err = int.from_bytes(os.read(ready_r, 4) or b"\0\0\0\x16", "big")
    try:
        if err:
            raise OSError(err, f"unshare: {os.strerror(err)}")
        _write_id_maps(pid, uid, gid)
    except OSError:
        os.close(go_w)
        os.waitpid(pid, 0)
        raise
    os.write(go_w, b"g")
    _wait_and_exit(pid)


def _write_id_maps(pid: int, uid: int, gid: int) -> None:
    if uid == 0:
        # Identity map of every id: host files keep their owners, and the child can
        # switch to NOBODY, which is counted for RLIMIT_NPROC in this namespace only.
        uid_map = gid_map = "0 0 4294967295\n"
    else:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        uid_map, gid_map = f"{uid} {uid} 1\n", f"{gid} {gid} 1\n"
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(uid_map)
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(gid_map)


def _wait_and_exit(pid: int) -> NoReturn:
    """Stand-in parent: hold no pipe ends, wait for ``pid``, exit with its status."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    close_fds()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    os._exit(max(0, os.waitstatus_to_exitcode(status)))


def _become_init(spec: dict, uid: int, gid: int) -> Jail:
    pid = os.fork()
    if pid:
        _wait_and_exit(pid)
    # PID 1 now: if we die the kernel kills every process in the namespace, and
    # if our stand-in parent is killed (pool.close, a crash) we die with it.
    die_with_parent()
    jail = Jail(namespaces=True, network="allowed" if spec["allow_network"] else "netns")
    jail.path_fds = _open_path_fds()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    failed = [mp for mp in _mount_points() if not _remount_readonly(mp)]
    # Pseudo filesystems guard their files by mode; a failure there is only noted.
    jail.readonly_fs = all(mp.startswith(("/sys/", "/dev/")) for mp in failed)
    if failed:
        jail.notes.append(f"could not make read-only: {', '.join(failed)}")
    for path in HIDDEN_DIRS:
        if os.path.isdir(path) and not os.path.islink(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        jail.private_proc = True
    except OSError as exc:
        jail.notes.append(f"host /proc stays visible ({exc})")
    if uid == 0:
        jail.run_uid = NOBODY
    else:
        jail.drop_caps = True
        # We and our stand-in parent (which entered the user namespace by unshare)
        # share the child's uid here, so both count against its RLIMIT_NPROC.
        jail.nproc_base = 2
    prctl(PR_SET_DUMPABLE, 0)  # a same-uid child may not ptrace or read us
    return jail


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash as octal.
            point = point.encode().decode("unicode_escape").encode("latin-1").decode()
            if point != "/proc" and not point.startswith("/proc/"):
                points.append(point)
    return points


def _remount_readonly(point: str) -> bool:
    try:
        st_flags = os.statvfs(point).f_flag
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        flags |= sum(ms for st, ms in _ST_TO_MS if st_flags & st)
        _mount(None, point, None, flags)
        return True
    except OSError:
        return False


def _open_path_fds() -> dict[str, int]:
    fds = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            fds[entry] = os.open(entry, os.O_PATH | os.O_DIRECTORY)
    return fds


def _reroute_imports(jail: Jail) -> None:
    """Point imports at /proc/self/fd/N for stdlib dirs the child's uid cannot reach.

    A root-owned Python under a 0700 home (e.g. pyenv in /root) is unreachable by
    NOBODY. Following the magic link of an fd opened while we could reach the dir
    skips the permission checks on its ancestors. Package ``__path__`` lists are
    rewritten too: submodule imports (``encodings.idna``) search those, not sys.path.
    """
    blocked = {
        entry: f"/proc/self/fd/{fd}"
        for entry, fd in jail.path_fds.items()
        if not _reachable_by_others(entry)
    }
    if not blocked:
        return

    def reroute(path: str) -> str:
        for entry, via in blocked.items():
            if path == entry or path.startswith(entry + os.sep):
                return via + path[len(entry) :]
        return path

    sys.path[:] = [reroute(entry) for entry in sys.path]
    for module in list(sys.modules.values()):
        paths = getattr(module, "__path__", None)
        if isinstance(paths, list):
            paths[:] = [reroute(path) for path in paths]


def _reachable_by_others(path: str) -> bool:
    """Whether a uid with no special rights can list ``path`` (mode bits only)."""
    mode = os.stat(path).st_mode
    if mode & 0o005 != 0o005:
        return False
    parent = os.path.dirname(path)
    while True:
        if not os.stat(parent).st_mode & 0o001:
            return False
        if parent == os.path.dirname(parent):
            return True
        parent = os.path.dirname(parent)


def _basic(spec: dict, notes: list[str]) -> Jail:
    """No namespaces: rlimits, a uid switch when root, a Python-level network block."""
    jail = Jail(network="allowed" if spec["allow_network"] else "audit-hook", notes=notes)
    # Orphaned grandchildren are re-parented to us, so we can find and kill them.
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    jail.path_fds = _open_path_fds()
    if os.getuid() == 0:
        jail.run_uid = NOBODY
    # RLIMIT_NPROC counts every thread of the uid on the host: allow for those
    # that exist now (approximate: the count drifts while the worker lives).
    jail.nproc_base = count_tasks(jail.run_uid if jail.run_uid is not None else os.getuid())
    return jail


def count_tasks(uid: int) -> int:
    """How many tasks (threads, which RLIMIT_NPROC counts) ``uid`` has in /proc."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return count
