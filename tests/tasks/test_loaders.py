"""JSONL loaders for each public format, and their error messages."""

import pytest

from selfimprove.tasks import TaskFileError, load_solutions, load_tasks

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_humaneval_format():
    tasks = load_tasks(FIXTURES / "humaneval.jsonl")
    assert [t.id for t in tasks] == ["HumanEval/0", "HumanEval/1"]
    assert tasks[0].kind == "code" and tasks[0].entry_point == "add"
    assert "def check(candidate)" in tasks[0].tests and tasks[0].reference.strip() == "return a + b"


def test_mbpp_format_shows_first_test_and_finds_entry_point():
    task = load_tasks(FIXTURES / "mbpp.jsonl")[0]
    assert task.id == "11" and task.entry_point == "max_of_three"
    assert "assert max_of_three(1, 2, 3) == 3" in task.prompt
    assert task.tests.count("assert") == 3


def test_gsm8k_format_takes_the_number_after_hashes():
    tasks = load_tasks(FIXTURES / "gsm8k.jsonl", split="heldout")
    assert [t.answer for t in tasks] == ["7", "2400"]
    assert tasks[0].id == "gsm8k/1" and tasks[0].split == "heldout"


def test_own_format_keeps_fields_and_defaults():
    tasks = load_tasks(FIXTURES / "selfimprove.jsonl")
    assert tasks[0].split == "heldout" and tasks[0].difficulty == 2
    assert tasks[1].split == "train" and tasks[1].suite == "selfimprove"
    assert tasks[2].kind == "code"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n', ":2: invalid JSON"),
        (b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "duplicate task id 'a'"),
        (b'{"foo": 1}\n', "unrecognised task format"),
        (b'{"id": "a", "prompt": ""}\n', "prompt"),
        (b'{"id": "a", "prompt": "x", "difficulty": 9}\n', "difficulty"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b'\xff\xfe{"id"}\n', "not UTF-8"),
        (b'{"id": "a", "prompt": "x\x00"}\n', "binary"),
        (b'{"question": "q", "answer": "no hashes"}\n', "####"),
        (b"\n\n", "no tasks"),
    ],
)
def test_bad_task_files_name_file_line_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(TaskFileError) as info:
        load_tasks(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_a_task_file_error(tmp_path):
    with pytest.raises(TaskFileError, match="does not exist"):
        load_tasks(tmp_path / "nope.jsonl")


def test_solutions_file(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"task_id": "a", "completion": "1"}\n{"task_id": 2, "completion": "x"}\n')
    assert load_solutions(path) == [(1, "a", "1"), (2, "2", "x")]
    path.write_text('{"task_id": "a"}\n')
    with pytest.raises(TaskFileError, match=r":1: missing field\(s\) \['completion'\]"):
        load_solutions(path)
