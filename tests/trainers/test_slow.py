"""Slow checks: the real student (SmolLM2-135M) trains, merges, loads and generates;
the entry point runs under ``accelerate launch``, with one process and with two (DDP).

Run with ``make test-slow`` (``pytest -m slow tests/trainers``); about 3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

from selfimprove.config import TrainingConfig
from selfimprove.models.local import TransformersModel
from selfimprove.trainers import load_manifest, train_sft

from .conftest import addition_pairs, addition_rows

pytestmark = pytest.mark.slow

ACCELERATE_CONFIGS = Path(__file__).parents[2] / "docs" / "accelerate"


def _accelerate() -> str:
    folder = os.path.dirname(sys.executable)
    if shutil.which("accelerate", path=folder) is None:
        pytest.skip("accelerate CLI not installed beside this Python")
    return os.path.join(folder, "accelerate")


def _round_data(folder: Path) -> tuple[Path, Path]:
    """Eight SFT rows and eight DPO pairs as JSONL files in ``folder``."""
    folder.mkdir()
    sft, dpo = folder / "sft.jsonl", folder / "dpo.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in addition_rows(8)))
    dpo.write_text("".join(json.dumps(r) + "\n" for r in addition_pairs(8)))
    return sft, dpo


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from selfimprove.models.base import ModelError
    from selfimprove.models.student import resolve_model_path

    try:
        return Path(resolve_model_path("smollm2-135m-instruct"))
    except ModelError as exc:
        pytest.skip(f"embedded SmolLM2 unavailable: {exc}")


def test_smollm2_lora_sft_merges_loads_and_generates(smollm2: Path, tmp_path: Path) -> None:
    data = Dataset.from_list(addition_rows(24))
    config = TrainingConfig(max_steps=2, batch_size=8, lora_r=16)
    result = train_sft(smollm2, data, config, tmp_path / "model", progress=False)

    assert len(result.stages[0].losses) == 2
    assert not (result.model_path / "adapter_config.json").exists()
    model = TransformersModel.load(str(result.model_path), device="cpu")
    [[answer]] = model.generate(["What is 17 + 25?"], max_tokens=12)
    assert answer.text.strip(), answer
    print(f"SmolLM2 SFT: {result.stages[0].seconds_per_step:.2f} s/step (batch 8, LoRA r=16)")


def test_entry_point_under_accelerate_launch(tiny_base: Path, tmp_path: Path) -> None:
    sft, dpo = _round_data(tmp_path / "data")
    command = [
        _accelerate(), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "selfimprove.trainers", "--base", str(tiny_base), "--sft", str(sft),
        "--dpo", str(dpo), "--out", str(tmp_path / "model"), "--method", "sft_dpo",
        "--max-steps", "2", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["method"] == "sft_dpo"
    assert [s.name for s in load_manifest(tmp_path / "model").stages] == ["sft", "dpo"]


def test_ddp_two_cpu_processes_with_ddp_yaml(tiny_base: Path, tmp_path: Path) -> None:
    """docs/accelerate/ddp.yaml as shipped, on CPU: torchrun starts two processes, DDP over gloo.

    (``accelerate launch --cpu --num_processes 2`` would start one process: with
    ``--cpu`` accelerate uses its single-process launcher unless given an MPI hostfile.)
    """
    sft, dpo = _round_data(tmp_path / "data")
    out = tmp_path / "runs" / "model"
    command = [
        _accelerate(), "launch", "--config_file", str(ACCELERATE_CONFIGS / "ddp.yaml"),
        "--num_processes", "2", "--main_process_port", "0",  # a free port, not 29500
        "-m", "selfimprove.trainers", "--base", str(tiny_base), "--sft", str(sft),
        "--dpo", str(dpo), "--out", str(out), "--method", "sft_dpo",
        "--max-steps", "2", "--no-progress",
    ]  # fmt: skip
    # No GPU even where there is one: this is the CPU (gloo) check.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads(done.stdout)  # one JSON document: only the main process printed
    assert (result["processes"], result["device"]) == (2, "cpu")
    manifest = load_manifest(out)
    assert manifest.processes == 2
    assert [s.name for s in manifest.stages] == ["sft", "dpo"]
    assert all(len(s.losses) == 2 for s in manifest.stages)
    # One folder, written once: no SFT hand-over folder or staging folder left beside it.
    assert [p.name for p in out.parent.iterdir()] == ["model"]
    model = TransformersModel.load(str(out), device="cpu", dtype="float32")
    [[answer]] = model.generate(["What is 12 + 30?"], max_tokens=4)
    assert answer.tokens > 0
