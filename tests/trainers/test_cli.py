"""``python -m selfimprove.trainers``: config loading, a whole round, user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from selfimprove.trainers import load_manifest
from selfimprove.trainers.__main__ import load_training_config, main

from .conftest import addition_pairs, addition_rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_config_from_a_training_file_or_a_run_config(tmp_path: Path) -> None:
    flat = tmp_path / "training.yaml"
    flat.write_text("method: dpo\nmax_steps: 5\n")
    assert load_training_config(flat).method == "dpo"
    run = tmp_path / "run.yaml"
    run.write_text("student: {model: x}\ntraining: {method: sft_dpo, lora_r: 4}\n")
    config = load_training_config(run, {"max_steps": 2, "method": None})
    assert (config.method, config.lora_r, config.max_steps) == ("sft_dpo", 4, 2)
    assert load_training_config(None).method == "sft"


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {lora_r: 0, speed: fast}\n")
    with pytest.raises(ValueError) as err:
        load_training_config(bad)
    assert "lora_r = 0" in str(err.value) and "speed: unknown key" in str(err.value)
    bad.write_text("- a list\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_training_config(bad)


def test_main_trains_a_round_and_prints_the_result(
    tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sft = write_jsonl(tmp_path / "sft.jsonl", addition_rows(8))
    dpo = write_jsonl(tmp_path / "dpo.jsonl", addition_pairs(8))
    config = tmp_path / "training.yaml"
    config.write_text("method: sft_dpo\nbatch_size: 4\nmax_length: 64\n")
    out = tmp_path / "model"
    argv = ["--base", str(tiny_base), "--sft", str(sft), "--dpo", str(dpo), "--out", str(out)]
    status = main([*argv, "--config", str(config), "--max-steps", "2"])

    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "sft_dpo" and [s["name"] for s in printed["stages"]] == [
        "sft",
        "dpo",
    ]
    assert "history" not in printed["stages"][0]  # kept short; the manifest has it
    manifest = load_manifest(out)
    assert manifest.config["max_steps"] == 2 and manifest.datasets["dpo"].rows == 8

    # Running it again into the same folder is a user error, not a traceback.
    assert main([*argv, "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_main_reports_user_errors_in_one_line(
    tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "model")
    assert (
        main(["--base", str(tiny_base), "--sft", str(tmp_path / "none.jsonl"), "--out", out]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["--base", str(tiny_base), "--out", out]) == 2
    assert "nothing to train" in capsys.readouterr().err
    assert main(["--base", str(tmp_path / "no-model"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "selfimprove.trainers", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--sft" in done.stdout and "--dpo" in done.stdout
