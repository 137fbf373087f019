"""TransformersModel on the tiny random Llama: batching, sampling, stop strings, token counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from selfimprove.config import ModelConfig
from selfimprove.models import ChatModel, ModelError, Prompt, load_model, local
from selfimprove.models.local import TransformersModel, pick_device, pick_dtype

PROMPTS: list[Prompt] = [
    "What is 1 + 2?",
    "Write the word cat in uppercase:",
    "hello there my friend, how are you today? tell me about the river and the mountain",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def f(x):"}],
    "7",
    "Which number is larger, 12 or 907?",
]


def test_load_model_builds_a_transformers_chat_model(tiny_path: Path) -> None:
    model = load_model(ModelConfig(model=str(tiny_path), device="cpu", batch_size=3))
    assert isinstance(model, TransformersModel)
    assert isinstance(model, ChatModel)
    assert model.batch_size == 3
    assert model.device.type == "cpu"


def test_batched_left_padded_greedy_matches_one_at_a_time(tiny: TransformersModel) -> None:
    batched = tiny.generate(PROMPTS, max_tokens=12)
    single = [tiny.generate([p], max_tokens=12)[0] for p in PROMPTS]
    assert batched == single
    # Not all equal: the order really is the caller's, not the length-sorted one.
    assert len({c[0].text for c in batched}) > 1


def test_greedy_with_n_repeats_the_one_greedy_answer(tiny: TransformersModel) -> None:
    [row] = tiny.generate(["What is 1 + 2?"], n=3, max_tokens=6)
    assert len(row) == 3 and row[0] == row[1] == row[2]


def test_sampling_returns_n_completions_reproducibly(tiny: TransformersModel) -> None:
    kwargs: dict[str, Any] = {"n": 3, "temperature": 1.0, "max_tokens": 8}
    first = tiny.generate(PROMPTS[:3], seed=7, **kwargs)
    again = tiny.generate(PROMPTS[:3], seed=7, **kwargs)
    other = tiny.generate(PROMPTS[:3], seed=8, **kwargs)
    assert [len(row) for row in first] == [3, 3, 3]
    assert first == again
    assert first != other
    assert len({c.text for c in first[0]}) > 1, "samples of one prompt should differ"


def test_unseeded_calls_differ_but_replay_from_the_base_seed(tiny_path: Path) -> None:
    def two_calls() -> list:
        model = TransformersModel.load(str(tiny_path), device="cpu", seed=3)
        return [model.generate(["hi"], n=2, temperature=1.0, max_tokens=8) for _ in range(2)]

    run = two_calls()
    assert run[0] != run[1]
    assert run == two_calls()


def test_sampling_leaves_the_global_rng_alone(tiny: TransformersModel) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.generate(["hi"], n=2, temperature=1.0, max_tokens=4, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_length_limit_counts_generated_tokens(tiny: TransformersModel) -> None:
    [[c]] = tiny.generate(["What is 1 + 2?"], max_tokens=5)
    assert c.finish_reason == "length"
    assert c.tokens == 5
    assert c.text


def test_stop_string_cuts_text_and_counts_tokens_to_the_stop(tiny: TransformersModel) -> None:
    prompt = "hello there my friend"
    [[full]] = tiny.generate([prompt], max_tokens=24)
    stop = full.text[6:9]
    expected = full.text[: full.text.index(stop)]
    [[cut]] = tiny.generate([prompt], max_tokens=24, stop=["never appears", stop])
    assert cut.text == expected
    assert cut.finish_reason == "stop"
    # The count is of tokens actually generated: exactly enough to spell out the stop string.
    [[upto]] = tiny.generate([prompt], max_tokens=cut.tokens)
    [[short]] = tiny.generate([prompt], max_tokens=cut.tokens - 1) if cut.tokens > 1 else [[None]]
    assert stop in upto.text
    assert short is None or stop not in short.text


def test_stop_in_a_batch_only_cuts_the_rows_that_contain_it(tiny: TransformersModel) -> None:
    plain = tiny.generate(PROMPTS, max_tokens=10)
    stop = plain[0][0].text[2:5]
    cut = tiny.generate(PROMPTS, max_tokens=10, stop=[stop])
    for [p], [c] in zip(plain, cut, strict=True):
        if stop in p.text:
            assert (c.text, c.finish_reason) == (p.text[: p.text.index(stop)], "stop")
        else:
            assert c == p


def test_end_of_sequence_ends_the_completion_and_is_not_counted(tiny_path: Path) -> None:
    model = TransformersModel.load(str(tiny_path), device="cpu")
    ids = model.tokenizer(
        model.render("What is 1 + 2?"), add_special_tokens=False, return_tensors="pt"
    )
    with torch.inference_mode():
        out = model.model.generate(**ids, max_new_tokens=10, do_sample=False)
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    # Declare the 4th generated token an end-of-sequence token: generation must stop there.
    end = new[3]
    first = new.index(end)
    model.model.generation_config.eos_token_id = [model.tokenizer.eos_token_id, end]
    model = TransformersModel(model.model, model.tokenizer)
    [[c]] = model.generate(["What is 1 + 2?"], max_tokens=10)
    assert (c.tokens, c.finish_reason) == (first, "stop")
    assert c.text == model.tokenizer.decode(new[:first], skip_special_tokens=True)


def test_usage_and_progress_add_up(tiny_path: Path) -> None:
    model = TransformersModel.load(str(tiny_path), device="cpu", batch_size=4)
    seen: list[int] = []
    out = model.generate(PROMPTS, n=2, temperature=0.9, max_tokens=6, progress=seen.append)
    prompt_tokens = sum(
        len(model.tokenizer(model.render(p), add_special_tokens=False)["input_ids"])
        for p in PROMPTS
    )
    assert model.usage.calls == 1
    assert model.usage.prompt_tokens == 2 * prompt_tokens
    assert model.usage.completion_tokens == sum(c.tokens for row in out for c in row)
    assert model.usage.cost_usd == 0.0
    assert sum(seen) == len(PROMPTS) and len(seen) == 3 and all(seen)  # 12 rows / 4


def test_system_prompt_and_chat_template(tiny_path: Path) -> None:
    model = TransformersModel.load(str(tiny_path), device="cpu", system_prompt="Answer briefly.")
    text = model.render("What is 1 + 2?")
    assert text == (
        "<|im_start|>system\nAnswer briefly.<|im_end|>\n"
        "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    own = model.render([{"role": "system", "content": "Own."}, {"role": "user", "content": "q"}])
    assert "Answer briefly." not in own and "Own." in own


def test_a_final_assistant_message_is_continued(tiny: TransformersModel) -> None:
    prompt = [
        {"role": "user", "content": "Judge 1 + 2 = 3."},
        {"role": "assistant", "content": '{"v'},
    ]
    text = tiny.render(prompt)
    assert text.endswith('<|im_start|>assistant\n{"v')  # open: no end of turn, no new turn
    assert tiny.continues_final_message
    [[c]] = tiny.generate([prompt], max_tokens=3)
    assert not c.text.startswith('{"v')  # the completion is only the continuation


def test_model_without_chat_template_takes_plain_text_only(tiny_path: Path) -> None:
    model = TransformersModel.load(str(tiny_path), device="cpu")
    model.tokenizer.chat_template = None
    assert model.render("1 + 2 =") == "1 + 2 ="
    [[c]] = model.generate(["1 + 2 ="], max_tokens=3)
    assert c.tokens == 3
    with pytest.raises(ModelError, match="no chat template"):
        model.generate([[{"role": "user", "content": "hi"}]])


def test_bad_arguments_name_the_value(tiny: TransformersModel) -> None:
    with pytest.raises(ValueError, match="-1"):
        tiny.generate(["hi"], n=-1)
    with pytest.raises(ValueError, match="temperature"):
        tiny.generate(["hi"], temperature=-0.5)
    with pytest.raises(TypeError, match="role"):
        tiny.generate([[{"content": "no role"}]])
    assert tiny.generate([]) == []


def test_device_and_dtype_choice(monkeypatch) -> None:
    monkeypatch.setattr(local, "cpu_has_bf16", lambda: False)
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setattr(local, "cpu_has_bf16", lambda: True)
    assert pick_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert pick_dtype("float32", torch.device("cpu")) == torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    if torch.cuda.is_available():
        assert pick_device("auto").type == "cuda"
    else:
        assert pick_device("auto").type == "cpu"
        with pytest.raises(ModelError, match="cuda"):
            pick_device("cuda")
