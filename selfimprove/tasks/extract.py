"""Pull the final answer out of free model text, carefully.

Small models restate the question ("7 + 7 = 12") and wrap answers in prose, so
the first number in a reply is usually not the answer, and a checker that
accepts any occurrence of the right value inflates scores ("64 is 95." must not
count as choosing 95 over 64). The rules here look for explicit answer markers
first and refuse to guess when the text stays ambiguous.

All functions are pure and never raise on odd input.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w])")
_MARKERS = [
    re.compile(r"####\s*(.+)"),
    re.compile(r"\\boxed\{([^{}]*)\}"),
    re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*(.+)", re.IGNORECASE),
]
_TRIM = " \t\r\n.,;:!?\"'`*_()[]{}<>"
_CODE_BLOCK_RE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def answer_candidate(text: str) -> str:
    """The span of ``text`` most likely to hold the final answer.

    Order: ``#### X`` (GSM8K), ``\\boxed{X}``, "the answer is X" / "Answer: X",
    then the last line's right-hand side after ``=`` or ``:`` or a final
    "... is X", else the last non-empty line.
    """
    text = text.strip()
    if not text:
        return ""
    for marker in _MARKERS:
        matches = marker.findall(text)
        if matches:
            return _first_line(matches[-1]).strip(_TRIM)
    last = _last_line(text)
    for sep in ("=", ":"):
        if sep in last:
            right = last.rsplit(sep, 1)[1].strip(_TRIM)
            if right:
                return right
    is_match = re.search(r"\bis\s+(\S+)\s*[.!]?\s*$", last)
    if is_match:
        return is_match.group(1).strip(_TRIM)
    return last.strip(_TRIM)


def parse_number(text: str) -> float | None:
    """The number in ``text`` when it holds exactly one distinct number, else None."""
    values = {_to_float(m) for m in _NUMBER_RE.findall(text)}
    values.discard(None)
    if len(values) == 1:
        return values.pop()
    return None


def extract_number(text: str) -> tuple[float | None, str]:
    """The final numeric answer in ``text`` and how it was found.

    Returns ``(value, note)``; ``value`` is None when no number or several
    different numbers compete and no marker says which one is meant.
    """
    candidate = answer_candidate(text)
    value = parse_number(candidate)
    if value is not None:
        return value, f"answer {_shown(candidate)!r}"
    value = parse_number(text)
    if value is not None:
        return value, "only number in the reply"
    found = _NUMBER_RE.findall(text)
    if not found:
        return None, "no number in the reply"
    return None, f"ambiguous: several numbers {found[:5]!r} and no answer marker"


def extract_choice(text: str, choices: list[str]) -> tuple[str | None, str]:
    """Which one of ``choices`` the reply picks, or None when it picks none or hedges.

    A reply that names several choices counts only when a marker singles one out:
    "the answer is X", "X is larger/greater/bigger/...", or a final "... is X".
    """
    named = _named(text, choices)
    if len(named) == 1:
        return named[0], f"names only {named[0]!r}"
    if not named:
        return None, f"names none of {choices!r}"
    picked = _named(answer_candidate(text), choices)
    if len(picked) == 1 and _has_marker(text):
        return picked[0], f"answer {picked[0]!r}"
    pattern = "|".join(re.escape(c) for c in choices)
    comparative = re.findall(
        rf"(?<![\w.])({pattern})(?![\w])\s+is\s+(?:the\s+)?(?:larger|greater|bigger|higher|"
        rf"largest|greatest|biggest|highest|smaller|less|lower|smallest|lowest)",
        text,
        flags=re.IGNORECASE,
    )
    if len(set(comparative)) == 1:
        return comparative[0], f"says {comparative[0]!r} is the one"
    return None, f"ambiguous: names {named!r} without saying which"


def extract_code(text: str) -> str:
    """The Python code in a reply: the fenced blocks joined, else the text itself."""
    blocks = _CODE_BLOCK_RE.findall(text)
    if blocks:
        return "\n\n".join(b.strip("\n") for b in blocks)
    return text


def storable(value: Any) -> bool:
    """Whether ``value`` (text, or what JSON decoded to) can be encoded as UTF-8.

    A JSON ``"\\ud800"`` escape decodes to a lone surrogate, which breaks content ids,
    JSON output and the store; readers of model JSON treat such output as unusable.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return False
    return True


def normalize_text(text: str, *, case_sensitive: bool = True) -> str:
    """Whitespace-folded, trimmed of surrounding punctuation and quotes."""
    text = " ".join(text.split()).strip(_TRIM)
    return text if case_sensitive else text.casefold()


def _shown(text: str, limit: int = 60) -> str:
    """``text`` as a verdict quotes it: an enormous reply must not become an enormous reason."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_marker(text: str) -> bool:
    return any(m.search(text) for m in _MARKERS)


def _named(text: str, choices: list[str]) -> list[str]:
    return [
        c for c in choices if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w])", text, re.IGNORECASE)
    ]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _to_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", ""))
    except ValueError:
        return None
