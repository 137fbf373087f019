"""Atomic cache folders: complete or absent, never half-written."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from selfimprove.models.cache import build_atomically, is_complete, read_marker


def _write(text: str):
    def build(folder: Path) -> dict:
        (folder / "weights.bin").write_text(text)
        return {"text": text}

    return build


def test_build_writes_files_and_marker_last(tmp_path: Path) -> None:
    dest = build_atomically(tmp_path / "m", _write("a"))
    assert (dest / "weights.bin").read_text() == "a"
    assert is_complete(dest) and read_marker(dest)["text"] == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_failing_build_leaves_nothing(tmp_path: Path) -> None:
    def crash(folder: Path) -> dict:
        (folder / "half.bin").write_text("partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        build_atomically(tmp_path / "m", crash)
    assert list(tmp_path.iterdir()) == []


def test_existing_complete_folder_is_kept_unless_overwriting(tmp_path: Path) -> None:
    build_atomically(tmp_path / "m", _write("first"))
    build_atomically(tmp_path / "m", _write("second"))
    assert (tmp_path / "m" / "weights.bin").read_text() == "first"
    build_atomically(tmp_path / "m", _write("third"), overwrite=True)
    assert (tmp_path / "m" / "weights.bin").read_text() == "third"


def test_incomplete_folder_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "junk").write_text("from a copy by hand")
    build_atomically(tmp_path / "m", _write("fresh"))
    assert is_complete(tmp_path / "m") and not (tmp_path / "m" / "junk").exists()


def test_losing_a_race_keeps_the_winner(tmp_path: Path) -> None:
    def racing(folder: Path) -> dict:
        build_atomically(tmp_path / "m", _write("winner"))  # another process finishes first
        return _write("loser")(folder)

    build_atomically(tmp_path / "m", racing)
    assert (tmp_path / "m" / "weights.bin").read_text() == "winner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_stale_temporary_folders_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / ".m.tmp-crashed"
    stale.mkdir()
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tmp_path / ".m.tmp-running"
    fresh.mkdir()
    build_atomically(tmp_path / "m", _write("a"))
    assert not stale.exists() and fresh.exists()
