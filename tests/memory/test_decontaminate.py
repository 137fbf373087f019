"""Decontamination fails loudly on leaks and stays quiet on template siblings."""

import pytest

from selfimprove.memory.decontaminate import ContaminationError, check_decontaminated, find_leaks
from selfimprove.tasks import SUITES, builtin_tasks
from selfimprove.types import Example


def _examples(prompts):
    return [Example(kind="positive", prompt=p, completion="x") for p in prompts]


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_builtin_train_tasks_do_not_leak_heldout(suite):
    heldout = builtin_tasks(suite, split="heldout", n=100)
    train = builtin_tasks(suite, split="train", n=300)
    assert find_leaks(_examples(t.prompt for t in train), heldout) == []


def test_exact_and_near_copies_are_caught():
    heldout = builtin_tasks("code", split="heldout", n=20) + builtin_tasks(
        "arithmetic", split="heldout", n=5
    )
    code, short = heldout[3], heldout[-1]
    copies = _examples(
        [
            code.prompt.upper(),  # case
            "  ".join(code.prompt.split()) + "!",  # whitespace and punctuation
            "Please solve this. " + code.prompt,  # near copy with a preamble
            short.prompt.replace("?", " ?"),
            "What is 1000 + 2000? Answer with just the number.",  # not a held-out item
        ]
    )
    leaks = find_leaks(copies, heldout)
    assert [task for _, task in leaks] == [code.id, code.id, code.id, short.id]
    with pytest.raises(ContaminationError, match=r"4 training example\(s\) contain held-out tasks"):
        check_decontaminated(copies, heldout)
