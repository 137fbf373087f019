"""Config models: YAML loading and error messages that name the field and value."""

import os
from pathlib import Path

import pytest

from selfimprove.config import Config, ConfigError, load_config, setup_environment


def test_defaults_are_the_embedded_setup():
    cfg = Config()
    assert cfg.student.model == "smollm2-135m-instruct" and cfg.store.backend == "chroma"
    assert cfg.tasks.heldout_per_suite >= 100


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "student:\n  batch_size: 4\ntasks:\n  suites: [arithmetic]\nloop:\n  rounds: 2\n"
    )
    cfg = load_config(path)
    assert (
        cfg.student.batch_size == 4 and cfg.tasks.suites == ["arithmetic"] and cfg.loop.rounds == 2
    )


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("student:\n  batch_size: -3\n", "student.batch_size = -3"),
        ("student:\n  batchsize: 4\n", "student.batchsize: unknown key"),
        ("sandbox:\n  memory_mb: lots\n", "sandbox.memory_mb = 'lots'"),
        ("store:\n  backend: redis\n", "store.backend = 'redis'"),
        ("loop: 3\n", "loop = 3"),
        ("student:\n  backend: litellm\n  model: gpt\n", "provider prefix"),
        ("- a\n- b\n", "must hold a mapping"),
        ("student: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_field_and_value(tmp_path, yaml_text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert "bad.yaml" in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_setup_environment_sets_offline_defaults_without_overriding(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    setup_environment()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/*.yaml")))
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.loop.out_dir != Path("runs/default")  # each names its own run folder
