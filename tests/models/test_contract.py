"""The ChatModel contract, run against every backend: fake, tiny transformers, litellm mock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from selfimprove.models import ChatModel, Prompt
from selfimprove.models.local import TransformersModel
from selfimprove.models.remote import LiteLLMModel
from selfimprove.testing import FakeChatModel

PROMPTS: list[Prompt] = ["What is 2 + 2?", [{"role": "user", "content": "Say hi."}], "x"]


@pytest.fixture(params=["fake", "transformers", "litellm"])
def backend(request: pytest.FixtureRequest) -> ChatModel:
    if request.param == "fake":
        return FakeChatModel("one two three four five six seven eight nine ten eleven")
    if request.param == "transformers":
        tiny: TransformersModel = request.getfixturevalue("tiny")
        return tiny
    return LiteLLMModel("openai/contract", mock_response="mocked reply")


def test_is_a_chat_model(backend: ChatModel) -> None:
    assert isinstance(backend, ChatModel)
    assert isinstance(backend.name, str) and backend.name


@pytest.mark.parametrize("n,temperature", [(1, 0.0), (3, 0.0), (2, 0.9)])
def test_one_row_of_n_completions_per_prompt(
    backend: ChatModel, n: int, temperature: float
) -> None:
    progress: list[int] = []
    out = backend.generate(
        PROMPTS, n=n, temperature=temperature, max_tokens=6, seed=0, progress=progress.append
    )
    assert [len(row) for row in out] == [n] * len(PROMPTS)
    for row in out:
        for c in row:
            assert isinstance(c.text, str)
            assert c.finish_reason in ("stop", "length")
    assert sum(progress) == len(PROMPTS) and all(step > 0 for step in progress)


def test_local_backends_respect_max_tokens(backend: ChatModel) -> None:
    if isinstance(backend, LiteLLMModel):
        pytest.skip("the mock ignores max_tokens; a real server enforces it")
    out = backend.generate(PROMPTS, max_tokens=3)
    assert all(c.tokens <= 3 for row in out for c in row)
    assert any(c.finish_reason == "length" for row in out for c in row)


def test_no_prompts_no_completions(backend: ChatModel) -> None:
    assert backend.generate([]) == []


def test_stop_cuts_and_marks_stop(backend: ChatModel) -> None:
    [[full]] = backend.generate(["What is 2 + 2?"], max_tokens=8)
    if len(full.text) < 4:
        pytest.skip(f"output too short to pick a stop string from: {full.text!r}")
    stop = full.text[2:4]
    [[cut]] = backend.generate(["What is 2 + 2?"], max_tokens=8, stop=[stop])
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop"


def test_bad_arguments_are_rejected(backend: ChatModel) -> None:
    bad: list[Callable[[], object]] = [
        lambda: backend.generate(["q"], n=0),
        lambda: backend.generate(["q"], temperature=-1.0),
        lambda: backend.generate(["q"], max_tokens=0),
    ]
    for call in bad:
        with pytest.raises(ValueError):
            call()
