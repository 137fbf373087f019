"""The public surface of selfimprove.models and selfimprove.testing."""

from __future__ import annotations

import pytest

import selfimprove.models
import selfimprove.testing
from selfimprove.config import ModelConfig, TeacherConfig
from selfimprove.models import ModelError, load_model


@pytest.mark.parametrize("module", [selfimprove.models, selfimprove.testing])
def test_all_is_sorted_and_resolves(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    for name in names:
        assert getattr(module, name) is not None, name


def test_load_model_needs_a_model_name() -> None:
    with pytest.raises(ModelError, match="no model configured"):
        load_model(TeacherConfig())


def test_load_model_picks_litellm_for_the_litellm_backend() -> None:
    model = load_model(ModelConfig(model="openai/x", backend="litellm", api_base="http://h:1/v1"))
    assert type(model).__name__ == "LiteLLMModel"
    assert model.name == "openai/x"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        selfimprove.models.NoSuchThing  # noqa: B018
