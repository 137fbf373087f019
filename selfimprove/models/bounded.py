"""Model text that is safe to grade and store: valid, no longer than ``max_tokens`` allows.

A backend can hand back more, or worse, than it was asked for: a server that
ignores ``max_tokens`` (megabytes of one answer), a plugged-in ``ChatModel`` or a
fake that counts words, a provider whose JSON holds a lone surrogate (``"\\ud800"``
decodes to one, and such a string cannot be encoded as UTF-8: it breaks an
example's content-hash id, the store and the evaluation's JSON). The collect graph
and ``evaluate`` read their models through ``bounded``:

    model = bounded(deps.model)      # same name, usage and generate signature
    [[c]] = model.generate(["q"], max_tokens=48)
    len(c.text) <= max(MIN_CHARS, 48 * CHARS_PER_TOKEN)

A cut completion ends with ``finish_reason="length"``, like one that hit ``max_tokens``;
an unencodable character becomes U+FFFD. NUL bytes, control characters and bidi
marks stay: they are valid text, the grader fails them with a clear reason and the
store keeps them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from selfimprove.models.base import ChatModel, ProgressFn, Prompt
from selfimprove.types import Completion

CHARS_PER_TOKEN = 32  # generous: real tokens average ~4 characters
MIN_CHARS = 4096  # the cap never goes below this, however small max_tokens is
_SURROGATE = re.compile("[\ud800-\udfff]")


class BoundedModel:
    """A ``ChatModel`` whose completions are cut and cleaned (see the module docstring).

    Other attributes (``name``, ``usage``, ``continues_final_message``) are the
    wrapped model's.
    """

    def __init__(self, model: ChatModel) -> None:
        self.model = model

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.model, attr)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 64,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        progress: ProgressFn | None = None,
    ) -> list[list[Completion]]:
        rows = self.model.generate(
            prompts,
            n=n,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            seed=seed,
            progress=progress,
        )
        limit = max(MIN_CHARS, max_tokens * CHARS_PER_TOKEN)
        return [[bounded_completion(c, limit) for c in row] for row in rows]


def bounded(model: ChatModel | None) -> Any:
    """``model`` read through ``BoundedModel`` (None stays None; never wrapped twice)."""
    if model is None or isinstance(model, BoundedModel):
        return model
    return BoundedModel(model)


def bounded_completion(completion: Completion, limit: int) -> Completion:
    """``completion`` with its text cut to ``limit`` characters and made encodable."""
    text, update = completion.text, {}
    if len(text) > limit:
        text = text[:limit]
        update["finish_reason"] = "length"
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    if text is completion.text and not update:
        return completion
    return completion.model_copy(update={**update, "text": text})
