"""Atomic writes of model folders into the selfimprove cache.

A converted or generated model folder is written to a hidden temporary sibling
and renamed into place only when complete, so a crash (or Ctrl-C) never leaves a
half-written folder that a later run would trust. Used by the embedded student
conversion (``selfimprove.models.student``) and ``selfimprove.testing.tiny_model``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "selfimprove.json"
"""File written last into every cached folder; its presence means the folder is complete."""

_STALE_AFTER_S = 3600.0


def is_complete(folder: Path) -> bool:
    """True when ``folder`` was fully written by ``build_atomically``."""
    return (folder / MARKER).is_file()


def read_marker(folder: Path) -> dict[str, Any]:
    """The metadata recorded when ``folder`` was built (empty if unreadable)."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def build_atomically(
    dest: Path, build: Callable[[Path], dict[str, Any]], *, overwrite: bool = False
) -> Path:
    """Build a folder with ``build(tmp_dir)`` and move it to ``dest`` in one rename.

    ``build`` fills the empty temporary folder and returns metadata, which is
    written to ``MARKER`` last. If another process finished ``dest`` first, its
    folder is kept and ours is discarded; an already complete ``dest`` is
    returned without building.

    Args:
        dest: the final folder.
        build: fills the folder it is given; returns JSON-serializable metadata.
        overwrite: replace an existing complete ``dest`` instead of keeping it.

    Returns:
        ``dest``.
    """
    dest = Path(dest)
    if is_complete(dest) and not overwrite:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        meta = build(tmp)
        meta = {"created_unix": round(time.time(), 3), **meta}
        (tmp / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        if dest.exists() and (overwrite or not is_complete(dest)):
            # An incomplete dest can only come from outside this function (a copy by
            # hand, an old layout): replacing it is safer than trusting it.
            _remove(dest)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not is_complete(dest):
                raise
            # Lost a race with another process that built the same folder: keep theirs.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _remove_stale_temps(dest: Path) -> None:
    """Delete temporary folders left by crashed builds of ``dest`` more than an hour ago."""
    now = time.time()
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_AFTER_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue
