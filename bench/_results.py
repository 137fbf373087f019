"""The JSON lines the bench scripts append to ``bench/results/`` and ``run_all.py`` reads back.

Every line starts with ``time`` (UTC, seconds), which ``run_all.py`` uses to tell a
line written by this run from an older one.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent / "results"


def now() -> str:
    """The current UTC time as records write it (ISO, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    """The fields every record starts with: when, how many cores, which Python."""
    return {
        "time": now(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def append(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON Lines file ``path`` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def last_record(path: Path, since: str = "") -> dict[str, Any] | None:
    """The last line of ``path`` if it was written at or after ``since`` (ISO time)."""
    if not path.exists():
        return None
    lines = path.read_text().strip().splitlines()
    if not lines:
        return None
    record = json.loads(lines[-1])
    return record if record.get("time", "") >= since else None
