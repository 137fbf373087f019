"""FakeChatModel: scripted replies that keep the ChatModel contract."""

from __future__ import annotations

import pytest

from selfimprove.models import ChatModel, ModelError
from selfimprove.testing import FakeChatModel
from selfimprove.types import Completion


def test_is_a_chat_model_with_a_name() -> None:
    model = FakeChatModel("x", name="teacher")
    assert isinstance(model, ChatModel) and model.name == "teacher"


def test_single_reply_for_everything() -> None:
    answer = Completion(text="the answer is 42", tokens=4, finish_reason="stop")
    assert FakeChatModel("the answer is 42").generate(["a", "b"]) == [[answer], [answer]]


def test_list_is_cycled_across_completions() -> None:
    model = FakeChatModel(["a", "b", "c"])
    out = model.generate(["p", "q"], n=2)
    assert [[c.text for c in row] for row in out] == [["a", "b"], ["c", "a"]]
    assert model.generate(["r"])[0][0].text == "b"


def test_mapping_by_prompt_text_with_default() -> None:
    model = FakeChatModel({"What is 2 + 2?": "4"}, default="no idea")
    out = model.generate(["What is 2 + 2?", [{"role": "user", "content": "What is 2 + 2?"}], "?"])
    assert [row[0].text for row in out] == ["4", "4", "no idea"]


def test_mapping_without_default_names_the_missing_prompt() -> None:
    with pytest.raises(ModelError, match="'unknown prompt'"):
        FakeChatModel({"a": "b"}).generate(["unknown prompt"])


def test_callable_gets_prompt_text_and_counter() -> None:
    model = FakeChatModel(lambda text, i: f"{text.upper()} {i}")
    out = model.generate(["hi", "yo"], n=2)
    assert [[c.text for c in row] for row in out] == [["HI 0", "HI 1"], ["YO 2", "YO 3"]]


def test_stop_and_max_tokens_by_words() -> None:
    model = FakeChatModel("one two\nthree four five")
    [[c]] = model.generate(["q"], stop=["\n"])
    assert (c.text, c.tokens, c.finish_reason) == ("one two", 2, "stop")
    [[c]] = model.generate(["q"], max_tokens=3)
    assert (c.text, c.tokens, c.finish_reason) == ("one two\nthree", 3, "length")
    [[c]] = model.generate(["q"], max_tokens=5)
    assert (c.tokens, c.finish_reason) == (5, "stop")
    # The stop string lies beyond max_tokens: the length limit is reached first.
    [[c]] = model.generate(["q"], max_tokens=1, stop=["five"])
    assert (c.text, c.finish_reason) == ("one", "length")


def test_records_calls_usage_and_progress() -> None:
    model = FakeChatModel("a b", batch_size=2)
    seen: list[int] = []
    model.generate(
        ["x y z", "w", "v"],
        n=2,
        temperature=0.5,
        max_tokens=9,
        stop=["!"],
        seed=3,
        progress=seen.append,
    )
    [call] = model.calls
    assert call.prompts == ["x y z", "w", "v"]
    assert (call.n, call.temperature, call.max_tokens, call.stop, call.seed) == (
        2,
        0.5,
        9,
        ["!"],
        3,
    )
    assert len(call.completions) == 3
    assert seen == [2, 1]
    assert model.prompts == ["x y z", "w", "v"]
    assert (model.usage.calls, model.usage.prompt_tokens, model.usage.completion_tokens) == (
        1,
        5,
        12,
    )


def test_rejects_what_real_backends_reject() -> None:
    with pytest.raises(ValueError, match="at least one reply"):
        FakeChatModel([])
    with pytest.raises(TypeError, match="role"):
        FakeChatModel("x").generate([[{"text": "no role"}]])
    with pytest.raises(ValueError, match="n must be"):
        FakeChatModel("x").generate(["q"], n=0)
