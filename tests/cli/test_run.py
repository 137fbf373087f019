"""`selfimprove run`: the table of rounds, resuming, and clear errors for bad configs."""

import json

import yaml
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.testing import tiny_model


def _config(tmp_path, **loop) -> str:
    data = {
        "student": {"model": str(tiny_model())},
        "tasks": {"suites": ["compare"], "heldout_per_suite": 4, "train_per_suite": 6},
        "loop": {"rounds": 1, "samples_per_task": 2, "out_dir": str(tmp_path / "run"), **loop},
        "store": {"embedding": "hash"},
        "training": {"max_steps": 2, "batch_size": 2},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_run_prints_the_rounds_and_the_gate_decisions(tmp_path):
    config = _config(tmp_path)
    result = CliRunner().invoke(app, ["run", config])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    for column in ("held-out pass@1", "compare", "minutes"):
        assert column in result.output
    assert "baseline" in result.output
    assert f"round 1: {report['rounds'][1]['reasons'][0]}" in result.output
    # the run's event stream, one line per event an operator acts on
    assert "round 1 from" in result.output and "round 1 gate: " in result.output
    again = CliRunner().invoke(app, ["run", config])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = CliRunner().invoke(app, ["run", config, "--resume"])
    assert resumed.exit_code == 0 and "round 1:" in resumed.output


def test_a_bad_config_is_one_clear_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("loop:\n  rounds: -1\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "loop.rounds = -1" in result.output and "Traceback" not in result.output
