"""Built-in suite ``code``: small Python functions checked by unit tests.

Each template has constants drawn per task (a divisor, a threshold, a letter
...), a reference solution, and an input generator. The expected outputs in
the tests are computed by running the reference here, at generation time, so
tests and reference agree by construction; the prompt shows one example call.
Levels 1-5 go from one-line list operations to small algorithms.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfimprove.types import Task

_N_TESTS = 5
_ORDINALS = ("zeroth", "first", "second", "third", "fourth")


@dataclass(frozen=True)
class _Template:
    name: str
    level: int
    signature: str
    describe: str  # formatted with the constants
    reference: str  # formatted with the constants
    constants: Callable[[random.Random], dict[str, Any]]
    inputs: Callable[[random.Random, dict[str, Any]], tuple]


def _ints(rng: random.Random, lo: int = -9, hi: int = 30, n: tuple[int, int] = (3, 8)) -> list:
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _word(rng: random.Random, n: tuple[int, int] = (3, 9)) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(*n)))


def _sentence(rng: random.Random) -> str:
    return " ".join(_word(rng, (1, 8)) for _ in range(rng.randint(2, 6)))


TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "scale_list",
        1,
        "xs",
        "returns a new list with every number in the list `xs` multiplied by {k}",
        "def scale_list(xs):\n    return [x * {k} for x in xs]\n",
        lambda r: {"k": r.randint(2, 30)},
        lambda r, c: (_ints(r),),
    ),
    _Template(
        "add_to_all",
        1,
        "xs",
        "returns a new list with {k} added to every number in the list `xs`",
        "def add_to_all(xs):\n    return [x + {k} for x in xs]\n",
        lambda r: {"k": r.randint(2, 40)},
        lambda r, c: (_ints(r),),
    ),
    _Template(
        "subtract_from_all",
        1,
        "xs",
        "returns a new list with {k} subtracted from every number in the list `xs`",
        "def subtract_from_all(xs):\n    return [x - {k} for x in xs]\n",
        lambda r: {"k": r.randint(1, 40)},
        lambda r, c: (_ints(r),),
    ),
    _Template(
        "count_greater",
        2,
        "xs",
        "returns how many numbers in the list `xs` are greater than {k}",
        "def count_greater(xs):\n    return sum(1 for x in xs if x > {k})\n",
        lambda r: {"k": r.randint(-10, 40)},
        lambda r, c: (_ints(r, -15, 45),),
    ),
    _Template(
        "sum_multiples",
        2,
        "xs",
        "returns the sum of the numbers in the list `xs` that are divisible by {k}",
        "def sum_multiples(xs):\n    return sum(x for x in xs if x % {k} == 0)\n",
        lambda r: {"k": r.randint(2, 15)},
        lambda r, c: (_ints(r, 0, 90),),
    ),
    _Template(
        "keep_below",
        2,
        "xs",
        "returns a list of the numbers in the list `xs` that are less than {k}, in their original order",
        "def keep_below(xs):\n    return [x for x in xs if x < {k}]\n",
        lambda r: {"k": r.randint(-10, 40)},
        lambda r, c: (_ints(r, -15, 45),),
    ),
    _Template(
        "count_letter",
        2,
        "s",
        "returns how many times the letter '{ch}' appears in the string `s`",
        "def count_letter(s):\n    return s.count({ch!r})\n",
        lambda r: {"ch": r.choice(string.ascii_lowercase)},
        lambda r, c: (_word(r, (4, 14)) + c["ch"] * r.randint(0, 2),),
    ),
    _Template(
        "every_kth",
        3,
        "xs",
        "returns every {k_word} element of the list `xs`, starting with the first element",
        "def every_kth(xs):\n    return xs[::{k}]\n",
        lambda r: (lambda k: {"k": k, "k_word": _ORDINALS[k]})(r.randint(2, 4)),
        lambda r, c: (_ints(r, 0, 9, (4, 11)),),
    ),
    _Template(
        "clamp",
        3,
        "x",
        "returns `x` limited to the range from {lo} to {hi}: {lo} if `x` is smaller, {hi} if `x` is larger, else `x`",
        "def clamp(x):\n    return max({lo}, min({hi}, x))\n",
        lambda r: {"lo": (lo := r.randint(-10, 10)), "hi": lo + r.randint(5, 30)},
        lambda r, c: (r.randint(c["lo"] - 15, c["hi"] + 15),),
    ),
    _Template(
        "power_sum",
        3,
        "n",
        "returns the sum of i**{p} for every integer i from 1 to `n` inclusive",
        "def power_sum(n):\n    return sum(i ** {p} for i in range(1, n + 1))\n",
        lambda r: {"p": r.randint(1, 3)},
        lambda r, c: (r.randint(0, 12),),
    ),
    _Template(
        "long_words",
        3,
        "s",
        "returns how many words in the string `s` (separated by spaces) have more than {k} letters",
        "def long_words(s):\n    return sum(1 for w in s.split() if len(w) > {k})\n",
        lambda r: {"k": r.randint(2, 5)},
        lambda r, c: (_sentence(r),),
    ),
    _Template(
        "digit_sum_times",
        3,
        "n",
        "returns the sum of the decimal digits of the non-negative integer `n`, multiplied by {k}",
        "def digit_sum_times(n):\n    return sum(int(d) for d in str(n)) * {k}\n",
        lambda r: {"k": r.randint(2, 7)},
        lambda r, c: (r.randint(0, 99999),),
    ),
    _Template(
        "fizz_word",
        4,
        "n",
        "returns 'FizzBuzz' if `n` is divisible by both {a} and {b}, 'Fizz' if only by {a}, 'Buzz' if only by {b}, and otherwise `n` as a string",
        "def fizz_word(n):\n    if n % {a} == 0 and n % {b} == 0:\n        return 'FizzBuzz'\n    if n % {a} == 0:\n        return 'Fizz'\n    if n % {b} == 0:\n        return 'Buzz'\n    return str(n)\n",
        lambda r: dict(zip(("a", "b"), r.sample([2, 3, 4, 5, 6, 7, 9, 11], 2), strict=True)),
        lambda r, c: (
            r.choice(
                [
                    c["a"] * c["b"] * r.randint(1, 3),
                    c["a"] * r.randint(1, 9),
                    c["b"] * r.randint(1, 9),
                    r.randint(1, 60),
                ]
            ),
        ),
    ),
    _Template(
        "replace_vowels",
        4,
        "s",
        "returns the string `s` with every vowel (a, e, i, o, u) replaced by '{ch}'",
        "def replace_vowels(s):\n    return ''.join({ch!r} if c in 'aeiou' else c for c in s)\n",
        lambda r: {"ch": r.choice("*#-xz_!?")},
        lambda r, c: (_word(r, (3, 12)),),
    ),
    _Template(
        "pad_left",
        4,
        "s",
        "returns the string `s` padded on the left with '{ch}' characters to a length of {w}; strings of length {w} or more are returned unchanged",
        "def pad_left(s):\n    return s.rjust({w}, {ch!r})\n",
        lambda r: {"ch": r.choice("0*.-"), "w": r.randint(4, 12)},
        lambda r, c: (_word(r, (1, 11)),),
    ),
    _Template(
        "running_total",
        4,
        "xs",
        "returns the list of running totals of the list `xs`, starting from {k}: element i is {k} plus the sum of xs[0] to xs[i]",
        "def running_total(xs):\n    out, total = [], {k}\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n",
        lambda r: {"k": r.randint(0, 50)},
        lambda r, c: (_ints(r, -5, 15),),
    ),
    _Template(
        "kth_largest",
        5,
        "xs",
        "returns the {k_word} largest distinct value in the list `xs`, or {d} if it has fewer than {k} distinct values",
        "def kth_largest(xs):\n    values = sorted(set(xs), reverse=True)\n    return values[{k} - 1] if len(values) >= {k} else {d}\n",
        lambda r: (lambda k: {"k": k, "k_word": _ORDINALS[k], "d": r.randint(-9, -1)})(
            r.randint(2, 3)
        ),
        lambda r, c: (_ints(r, 0, 12, (1, 8)),),
    ),
    _Template(
        "caesar",
        5,
        "s",
        "returns the lowercase string `s` with every letter shifted {k} places forward in the alphabet, wrapping from 'z' to 'a'",
        "def caesar(s):\n    return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) for c in s)\n",
        lambda r: {"k": r.randint(1, 25)},
        lambda r, c: (_word(r, (2, 10)),),
    ),
    _Template(
        "compress_runs",
        5,
        "s",
        "returns a list of [character, count] pairs for each run of repeated characters in the string `s`, then appends the number {k} at the end of the list",
        "def compress_runs(s):\n    out = []\n    for c in s:\n        if out and out[-1][0] == c:\n            out[-1][1] += 1\n        else:\n            out.append([c, 1])\n    out.append({k})\n    return out\n",
        lambda r: {"k": r.randint(0, 30)},
        lambda r, c: ("".join(r.choice("ab") * r.randint(1, 3) for _ in range(r.randint(1, 5))),),
    ),
    _Template(
        "rotate_left",
        5,
        "xs",
        "returns the list `xs` rotated left by {k} positions (the first elements move to the end; rotate by {k} modulo the length) and returns an empty list unchanged",
        "def rotate_left(xs):\n    if not xs:\n        return []\n    k = {k} % len(xs)\n    return xs[k:] + xs[:k]\n",
        lambda r: {"k": r.randint(1, 12)},
        lambda r, c: (_ints(r, 0, 9, (0, 7)),),
    ),
    _Template(
        "digital_root_plus",
        5,
        "n",
        "repeatedly replaces the non-negative integer `n` by the sum of its decimal digits until a single digit remains, and returns that digit plus {k}",
        "def digital_root_plus(n):\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n    return n + {k}\n",
        lambda r: {"k": r.randint(0, 25)},
        lambda r, c: (r.randint(0, 10**6),),
    ),
)


def make(level: int, rng: random.Random) -> Task:
    """One code task of the given level (1-5), with tests and a reference solution."""
    choices = [t for t in TEMPLATES if t.level == level]
    if not choices:
        raise ValueError(f"code has levels 1-5, got {level!r}")
    return _build(rng.choice(choices), rng)


def make_template(name: str, rng: random.Random) -> Task:
    """One code task of the template called ``name``, with new constants and inputs."""
    for template in TEMPLATES:
        if template.name == name:
            return _build(template, rng)
    raise ValueError(f"no code template {name!r}; known: {[t.name for t in TEMPLATES]}")


def _build(template: _Template, rng: random.Random) -> Task:
    constants = template.constants(rng)
    reference = template.reference.format(**constants)
    namespace: dict[str, Any] = {}
    exec(compile(reference, f"<reference {template.name}>", "exec"), namespace)  # our own code
    function = namespace[template.name]
    cases = []
    while len(cases) < _N_TESTS:
        args = template.inputs(rng, constants)
        if args not in [a for a, _ in cases]:
            cases.append((args, function(*args)))
    call = _call(template.name, cases[0][0])
    prompt = (
        f"Write a Python function `{template.name}({template.signature})` that "
        f"{template.describe.format(**constants)}.\n"
        f"Example: {call} == {cases[0][1]!r}"
    )
    tests = "\n".join(f"assert {_call(template.name, a)} == {out!r}" for a, out in cases)
    return Task(
        id="pending",
        prompt=prompt,
        kind="code",
        tests=tests,
        entry_point=template.name,
        reference=reference,
        difficulty=template.level,
        metadata={
            "template": template.name,
            "split_key": f"{template.name}:{sorted(constants.items())}",
        },
    )


def _call(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"
