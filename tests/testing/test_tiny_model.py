"""tiny_model(): a deterministic ~1M-parameter Llama folder that the real backend can run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from selfimprove.models.cache import is_complete
from selfimprove.models.local import TransformersModel
from selfimprove.testing import TINY_MODEL_VERSION, tiny_model


def _digest(folder: Path) -> dict[str, str]:
    names = ["model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"]
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny") / "a")


def test_builds_a_complete_small_hf_folder(built: Path) -> None:
    assert is_complete(built)
    config = json.loads((built / "config.json").read_text())
    assert config["model_type"] == "llama"
    marker = json.loads((built / "selfimprove.json").read_text())
    assert 300_000 < marker["parameters"] < 2_000_000
    assert (built / "chat_template.jinja").is_file() or "chat_template" in (
        built / "tokenizer_config.json"
    ).read_text()


def test_same_seed_same_bytes_other_seed_differs(built: Path, tmp_path: Path) -> None:
    assert _digest(tiny_model(tmp_path / "b")) == _digest(built)
    other = _digest(tiny_model(tmp_path / "c", seed=1))
    assert other["model.safetensors"] != _digest(built)["model.safetensors"]


def test_existing_folder_is_reused(built: Path) -> None:
    before = (built / "model.safetensors").stat().st_mtime_ns
    assert tiny_model(built) == built
    assert (built / "model.safetensors").stat().st_mtime_ns == before


def test_default_location_is_under_selfimprove_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SELFIMPROVE_HOME", str(tmp_path))
    path = tiny_model()
    assert path == tmp_path / "models" / f"tiny-llama-v{TINY_MODEL_VERSION}"
    assert tiny_model(seed=2).name.endswith("-seed2")


def test_tokenizer_has_chatml_pad_and_eos(built: Path) -> None:
    model = TransformersModel.load(str(built), device="cpu")
    tok = model.tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert model.render("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    # Digits are single tokens, so arithmetic is learnable digit by digit.
    pieces = tok.convert_ids_to_tokens(tok("12345 + 678")["input_ids"])
    assert {"1", "2", "3", "4", "5"} <= set(pieces)
    assert (
        tok.decode(tok("def f(x):\n    return x + 3")["input_ids"]) == "def f(x):\n    return x + 3"
    )


def test_loads_with_transformers_model_and_generates(built: Path) -> None:
    model = TransformersModel.load(str(built), device="cpu", batch_size=2)
    out = model.generate(["What is 2 + 3?", "hello"], max_tokens=5)
    assert [len(row) for row in out] == [1, 1]
    assert all(row[0].tokens == 5 and row[0].finish_reason == "length" for row in out)
