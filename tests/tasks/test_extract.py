"""Answer extraction: markers first, no guessing when the reply hedges."""

import pytest

from selfimprove.tasks.extract import answer_candidate, extract_choice, extract_code, extract_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        ("17 + 25 = 42", 42),
        ("7 + 7 = 12", 12),  # restating the question: the answer is after '='
        ("The answer is 42.", 42),
        ("Answer: -3", -3),
        ("Let me think.\n#### 1,234", 1234),
        ("so the result is \\boxed{15}", 15),
        ("The sum of 17 and 25 is 42.", 42),
        ("1. 5 + 3 = 8", 8),
        ("It is 2.5", 2.5),
    ],
)
def test_extract_number_finds_the_final_answer(text, value):
    got, _ = extract_number(text)
    assert got == value


@pytest.mark.parametrize("text", ["", "no digits here", "84 and 22 make 26 or 84"])
def test_extract_number_refuses_to_guess(text):
    got, note = extract_number(text)
    assert got is None
    assert note


def test_answer_candidate_prefers_markers_over_last_line():
    assert answer_candidate("The answer is 9.\nBut also 10 maybe") == "9"


@pytest.mark.parametrize(
    ("text", "choices", "picked"),
    [
        ("95", ["64", "95"], "95"),
        ("The answer is 95.", ["64", "95"], "95"),
        ("95 is larger than 64.", ["64", "95"], "95"),
        ("The larger number is 95.", ["64", "95"], "95"),
        ("64 is smaller, so the answer is 95", ["64", "95"], "95"),
        ("14 is larger than 23.", ["14", "23"], "14"),  # wrong but unambiguous: it picks 14
    ],
)
def test_extract_choice(text, choices, picked):
    got, _ = extract_choice(text, choices)
    assert got == picked


@pytest.mark.parametrize(
    ("text", "choices"),
    [
        ("64 is 95.", ["64", "95"]),
        ("64 or 95", ["64", "95"]),
        ("I cannot tell", ["64", "95"]),
        ("865 ÷ 883 equals 1.", ["865", "883"]),
    ],
)
def test_extract_choice_rejects_hedging(text, choices):
    got, _ = extract_choice(text, choices)
    assert got is None


def test_extract_code_joins_fenced_blocks_and_falls_back_to_text():
    text = "Here:\n```python\ndef f(x):\n    return x\n```\nand\n```\nprint(f(1))\n```"
    assert extract_code(text) == "def f(x):\n    return x\n\nprint(f(1))"
    assert extract_code("def g(): pass") == "def g(): pass"
    assert "def h" in extract_code("```python\ndef h(): pass")  # unterminated fence
