"""Rows for TRL: chat wrapping, messages split, column checks, content hashes, JSONL reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from selfimprove.trainers.data import dataset_info, dpo_rows, read_jsonl, sft_rows

from .conftest import addition_pairs, addition_rows

USER = {"role": "user", "content": "What is 1 + 1?"}
ANSWER = {"role": "assistant", "content": "2"}


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path):
    return AutoTokenizer.from_pretrained(tiny_base)


def test_plain_sft_rows_become_chat_turns_when_the_tokenizer_has_a_template(tokenizer) -> None:
    data = Dataset.from_list(addition_rows(3)).add_column("example_id", ["a", "b", "c"])
    rows = sft_rows(data, tokenizer, chat=True)
    assert rows.column_names == ["prompt", "completion"]
    assert rows[0]["prompt"] == [{"role": "user", "content": data[0]["prompt"]}]
    assert rows[0]["completion"] == [{"role": "assistant", "content": data[0]["completion"]}]

    plain = sft_rows(data, tokenizer, chat=False)
    assert plain[0] == {"prompt": data[0]["prompt"], "completion": data[0]["completion"]}
    tokenizer_without = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tokenizer_without.chat_template = None
    assert isinstance(sft_rows(data, tokenizer_without, chat=True)[0]["prompt"], str)


def test_messages_rows_split_at_the_last_assistant_turn(tokenizer) -> None:
    data = Dataset.from_dict({"messages": [[USER, ANSWER]]})
    rows = sft_rows(data, tokenizer, chat=True)
    assert rows[0] == {"prompt": [USER], "completion": [ANSWER]}

    unanswered = Dataset.from_dict({"messages": [[USER]]})
    with pytest.raises(ValueError, match="must end with an assistant turn"):
        sft_rows(unanswered, tokenizer, chat=True)


def test_wrong_columns_are_named(tokenizer) -> None:
    with pytest.raises(ValueError, match=r"got \['question'\]"):
        sft_rows(Dataset.from_dict({"question": ["x"]}), tokenizer, chat=True)
    with pytest.raises(ValueError, match=r"missing \['chosen', 'rejected'\]"):
        dpo_rows(Dataset.from_dict({"prompt": ["x"]}), tokenizer, chat=True)


def test_dpo_rows_wrap_both_answers(tokenizer) -> None:
    data = Dataset.from_list(addition_pairs(2))
    rows = dpo_rows(data, tokenizer, chat=True)
    assert rows[0]["chosen"] == [{"role": "assistant", "content": data[0]["chosen"]}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": data[0]["rejected"]}]


def test_dataset_info_hashes_content_in_order() -> None:
    rows = addition_rows(4)
    info = dataset_info(Dataset.from_list(rows))
    assert info.rows == 4 and info.columns == ["completion", "prompt"]
    assert dataset_info(Dataset.from_list(rows)).sha256 == info.sha256  # stable
    assert dataset_info(Dataset.from_list(rows[::-1])).sha256 != info.sha256
    changed = [dict(rows[0], completion="0"), *rows[1:]]
    assert dataset_info(Dataset.from_list(changed)).sha256 != info.sha256
    assert dataset_info(None).rows == 0


def test_read_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in addition_rows(3)) + "\n\n")
    assert read_jsonl(path).to_list() == addition_rows(3)

    path.write_text('{"prompt": "a", "completion": "b"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1 is not a JSON object"):
        read_jsonl(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")
