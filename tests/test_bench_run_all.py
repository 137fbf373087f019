"""``bench/run_all.py``: runs each script, then tabulates the JSON line each wrote in this run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_all(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as when the script runs: its folder first
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    return module


def _script(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f"import json, sys\nfrom datetime import UTC, datetime\n{body}\n")


WRITE = (
    "line = {{'time': datetime.now(UTC).isoformat(timespec='seconds'), {fields}}}\n"
    "open(sys.argv[0].rsplit('/', 1)[0] + '/results/{out}', 'a').write(json.dumps(line) + '\\n')\n"
    "print('figure printed by the script')"
)


def test_it_tabulates_each_script_and_reports_a_failed_one(run_all, tmp_path, capfd):
    _script(tmp_path, "ok.py", WRITE.format(fields="'ratio': 21.5, 'per_s': 400.0", out="ok.jsonl"))
    _script(tmp_path, "broken.py", "sys.exit(3)")
    # An old line must not be reported as this run's figure.
    (tmp_path / "results" / "stale.jsonl").write_text(
        json.dumps({"time": "2020-01-01T00:00:00+00:00", "ratio": 99.0}) + "\n"
    )
    _script(tmp_path, "stale.py", "print('wrote nothing')")

    def rows(r):
        return [("sandbox ratio", f"{r['ratio']:.1f}x ({r['per_s']:.0f}/s)", ">= 10x")]

    run_all.BENCHES = {
        "ok": ("ok.py", "ok.jsonl", rows),
        "broken": ("broken.py", "broken.jsonl", rows),
        "stale": ("stale.py", "stale.jsonl", rows),
    }

    assert run_all.main([]) == 1
    out = capfd.readouterr().out
    summary = out[out.index("=== summary") :]
    assert "figure printed by the script" in out
    assert "sandbox ratio" in summary and "21.5x (400/s)" in summary and "target >= 10x" in summary
    assert "broken: FAILED (exit 3)" in summary
    assert "stale: FAILED (no result line written)" in summary and "99.0" not in summary
    assert "ok " in summary.splitlines()[1] and "min" in summary.splitlines()[1]


def test_it_runs_only_the_named_scripts_and_refuses_unknown_names(run_all, tmp_path, capsys):
    _script(tmp_path, "ok.py", WRITE.format(fields="'ratio': 2.0, 'per_s': 1.0", out="ok.jsonl"))
    _script(tmp_path, "other.py", "sys.exit(5)")
    run_all.BENCHES = {
        "ok": ("ok.py", "ok.jsonl", lambda r: [("f", f"{r['ratio']}", "t")]),
        "other": ("other.py", "other.jsonl", lambda r: []),
    }
    assert run_all.main(["ok"]) == 0
    assert "other" not in capsys.readouterr().out
    assert run_all.main(["nope"]) == 2
    assert "unknown benchmark(s) ['nope']" in capsys.readouterr().err


def test_table_only_reads_the_last_lines_without_running_anything(run_all, tmp_path, capfd):
    _script(tmp_path, "ok.py", "sys.exit(4)")  # would fail if it ran
    (tmp_path / "results" / "ok.jsonl").write_text(
        json.dumps({"time": "2020-01-01T00:00:00+00:00", "ratio": 1.5})
        + "\n"
        + json.dumps({"time": "2020-01-02T00:00:00+00:00", "ratio": 3.25})
        + "\n"
    )
    run_all.BENCHES = {"ok": ("ok.py", "ok.jsonl", lambda r: [("f", f"{r['ratio']}x", "t")])}
    assert run_all.main(["--table"]) == 0
    out = capfd.readouterr().out
    assert "3.25x" in out and "1.5x" not in out and "===" not in out


@pytest.mark.parametrize(
    "name", ["sandbox", "store", "scaling", "generation", "training", "overhead"]
)
def test_every_real_result_line_in_the_repository_tabulates(run_all, name):
    """The rows read the fields the scripts write: the committed result files' last lines."""
    _, results, rows = run_all.BENCHES[name]
    path = ROOT / "bench" / "results" / results
    if not path.exists():
        pytest.skip(f"no {results} committed")
    record = json.loads(path.read_text().strip().splitlines()[-1])
    table = rows(record)
    assert table and all(len(row) == 3 and all(row) for row in table)


def test_the_makefile_runs_it():
    assert "bench/run_all.py" in (ROOT / "Makefile").read_text()
