"""Export to Hugging Face datasets in the formats TRL's SFT and DPO trainers read."""

from __future__ import annotations

import json

import pytest

from selfimprove.memory import dpo_dataset, sft_dataset
from selfimprove.types import Example

POSITIVE = Example(kind="positive", prompt="What is 17 + 25?", completion="42", passed=True)
WORKFLOW = Example(kind="workflow", prompt="How to add?", completion="Add the columns.")
VERIFIED = Example(kind="attempt", prompt="Sort [2, 1].", completion="[1, 2]", passed=True)
PAIR = Example(kind="pair", prompt="What is 17 + 25?", completion="42", rejected="32")
# A tiny ChatML-like template, enough to check that a chat tokenizer can render the rows.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_sft_prompt_completion():
    data = sft_dataset([POSITIVE, WORKFLOW, VERIFIED])
    assert data.column_names == ["prompt", "completion"]
    assert data.num_rows == 3
    assert data[0] == {"prompt": "What is 17 + 25?", "completion": "42"}


def test_sft_messages():
    data = sft_dataset([POSITIVE], conversational=True, with_ids=True)
    assert data.column_names == ["messages", "example_id"]
    assert data[0]["messages"] == [
        {"role": "user", "content": "What is 17 + 25?"},
        {"role": "assistant", "content": "42"},
    ]
    assert data[0]["example_id"] == POSITIVE.id


def test_dpo_pairs():
    data = dpo_dataset([PAIR])
    assert data.column_names == ["prompt", "chosen", "rejected"]
    assert data.to_list() == [{"prompt": "What is 17 + 25?", "chosen": "42", "rejected": "32"}]
    chat = dpo_dataset([PAIR], conversational=True)[0]
    assert chat["prompt"] == [{"role": "user", "content": "What is 17 + 25?"}]
    assert chat["chosen"] == [{"role": "assistant", "content": "42"}]
    assert chat["rejected"] == [{"role": "assistant", "content": "32"}]


def test_empty_exports_keep_their_columns():
    assert sft_dataset([]).column_names == ["prompt", "completion"]
    assert sft_dataset([], conversational=True).num_rows == 0
    assert dpo_dataset([]).column_names == ["prompt", "chosen", "rejected"]


@pytest.mark.parametrize(
    ("example", "message"),
    [
        (Example(kind="negative", prompt="p", completion="c", passed=False), "not a positive"),
        (Example(kind="positive", prompt="p", completion="c", passed=False), "not a positive"),
        (Example(kind="attempt", prompt="p", completion="c"), "unverified"),
        (PAIR, "dpo_dataset"),
        (Example(kind="positive", prompt="p", completion="  "), "empty completion"),
        (Example(kind="positive", prompt="", completion="c"), "empty prompt"),
    ],
)
def test_sft_refuses_what_it_cannot_train_on(example, message):
    with pytest.raises(ValueError, match=message) as caught:
        sft_dataset([POSITIVE, example])
    assert repr(example.id) in str(caught.value)


@pytest.mark.parametrize(
    ("example", "message"),
    [
        (POSITIVE, "not 'pair'"),
        (Example(kind="pair", prompt="p", completion="c"), "no rejected answer"),
        (Example(kind="pair", prompt="p", completion="c", rejected=""), "no rejected answer"),
        (Example(kind="pair", prompt="p", completion="", rejected="r"), "empty chosen"),
        (Example(kind="pair", prompt="p", completion="c", rejected="c"), "same chosen"),
    ],
)
def test_dpo_refuses_incomplete_pairs(example, message):
    with pytest.raises(ValueError, match=message) as caught:
        dpo_dataset([PAIR, example])
    assert repr(example.id) in str(caught.value)


def _chat_tokenizer():
    from transformers import PreTrainedTokenizerFast

    from selfimprove.memory.embeddings import default_tokenizer_path

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(default_tokenizer_path()))
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def test_a_chat_tokenizer_renders_the_rows():
    # What TRL does with conversational rows: apply the chat template, then tokenize.
    tokenizer = _chat_tokenizer()
    messages = sft_dataset([POSITIVE], conversational=True)[0]["messages"]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|user|>What is 17 + 25?\n<|assistant|>42\n"
    row = dpo_dataset([PAIR], conversational=True)[0]
    prompt = tokenizer.apply_chat_template(
        row["prompt"], tokenize=False, add_generation_prompt=True
    )
    chosen = tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    assert chosen.startswith(prompt)


@pytest.mark.slow
def test_trl_reads_the_datasets():
    data_utils = pytest.importorskip("trl.data_utils")  # importing trl takes ~12 s here
    tokenizer = _chat_tokenizer()
    sft = sft_dataset([POSITIVE], conversational=True)
    assert data_utils.is_conversational(sft[0])
    rendered = data_utils.maybe_apply_chat_template(sft[0], tokenizer)
    assert rendered["text"] == "<|user|>What is 17 + 25?\n<|assistant|>42\n"
    dpo = dpo_dataset([PAIR], conversational=True)
    rendered = data_utils.maybe_apply_chat_template(dpo[0], tokenizer)
    assert rendered == {
        "prompt": "<|user|>What is 17 + 25?\n<|assistant|>",
        "chosen": "42\n",
        "rejected": "32\n",
    }
    assert not data_utils.is_conversational(dpo_dataset([PAIR])[0])


def test_a_fix_with_its_feedback_in_context_exports_as_the_whole_conversation():
    turns = [
        {"role": "user", "content": "What is 17 + 25?"},
        {"role": "assistant", "content": "32"},
        {"role": "user", "content": "That answer is wrong. Fix it."},
    ]
    fix = POSITIVE.model_copy(
        update={"agent": "self_debug", "metadata": {"messages": json.dumps(turns)}}
    )
    data = sft_dataset([POSITIVE, fix])  # one conversation in the set: all rows as messages
    assert data.column_names == ["messages"]
    assert data[0]["messages"] == [turns[0], {"role": "assistant", "content": "42"}]
    assert data[1]["messages"] == [*turns, {"role": "assistant", "content": "42"}]
