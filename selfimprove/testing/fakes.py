"""``FakeChatModel``: a scripted ``ChatModel`` for tests, with no model behind it.

    from selfimprove.testing import FakeChatModel
    model = FakeChatModel(["4", "5"])                        # cycled
    model = FakeChatModel({"What is 2 + 2?": "4"}, default="I don't know")
    model = FakeChatModel(lambda prompt, i: prompt.upper())  # computed
    [[a], [b]] = model.generate(["What is 2 + 2?", "hi"])
    model.calls[-1].prompts                                  # what was asked

It honours the ``ChatModel`` contract the way a real backend does, counting
whitespace-separated words as tokens: ``n`` completions per prompt, text cut
before the first stop string (``finish_reason="stop"``), at most ``max_tokens``
words (``finish_reason="length"``), ``progress`` after each batch, ``usage``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice

from selfimprove.models.base import (
    ModelError,
    ProgressFn,
    Prompt,
    Usage,
    check_generate_args,
    cut_at_stop,
    prompt_text,
    to_messages,
)
from selfimprove.types import Completion

Script = str | Sequence[str] | Mapping[str, str] | Callable[[str, int], str]
"""What a ``FakeChatModel`` answers: one reply for everything, a list of replies
used in turn (cycled), a mapping from prompt text to reply, or a callable
``(prompt_text, i) -> reply`` where ``i`` counts completions made so far (0, 1, ...)."""

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class FakeCall:
    """One recorded ``generate`` call."""

    prompts: list[Prompt]
    n: int
    temperature: float
    max_tokens: int
    stop: list[str] | None
    seed: int | None
    completions: list[list[Completion]] = field(default_factory=list)


class FakeChatModel:
    """A scripted ``ChatModel``; see the module docstring for examples.

    The prompt text a script sees is the prompt itself for a string prompt, or the
    content of the last message for a message list.

    Args:
        script: what to answer (see ``Script``). Lists are cycled across all
            completions, so ``n=2`` on one prompt takes two consecutive entries.
        name: what ``name`` reports.
        default: the reply for prompts a mapping script does not contain; without
            it such a prompt raises ``ModelError``.
        batch_size: how many prompts make one batch for ``progress`` calls.
    """

    def __init__(
        self,
        script: Script = "",
        *,
        name: str = "fake",
        default: str | None = None,
        batch_size: int = 8,
    ) -> None:
        if isinstance(script, Sequence) and not isinstance(script, str) and not script:
            raise ValueError("a list script needs at least one reply")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.script = script
        self.name = name
        self.default = default
        self.batch_size = batch_size
        self.calls: list[FakeCall] = []
        self.usage = Usage()
        self._count = 0

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
        """Answer each prompt ``n`` times from the script; see ``ChatModel.generate``."""
        check_generate_args(n, temperature, max_tokens)
        for p in prompts:
            to_messages(p)  # same validation as the real backends
        results: list[list[Completion]] = []
        for start in range(0, len(prompts), self.batch_size):
            for prompt in prompts[start : start + self.batch_size]:
                text = prompt_text(prompt)
                results.append(
                    [self._complete(self._reply(text), stop, max_tokens) for _ in range(n)]
                )
            if progress is not None:
                progress(len(prompts[start : start + self.batch_size]))
        self.calls.append(
            FakeCall(
                prompts=list(prompts),
                n=n,
                temperature=temperature,
                max_tokens=max_tokens,
                stop=list(stop) if stop is not None else None,
                seed=seed,
                completions=results,
            )
        )
        self.usage.add(
            prompt_tokens=sum(_words(m["content"]) for p in prompts for m in to_messages(p)),
            completion_tokens=sum(c.tokens for row in results for c in row),
        )
        return results

    @property
    def prompts(self) -> list[Prompt]:
        """Every prompt asked so far, across calls, in order."""
        return [p for call in self.calls for p in call.prompts]

    def _reply(self, text: str) -> str:
        i = self._count
        self._count += 1
        script = self.script
        if isinstance(script, str):
            return script
        if isinstance(script, Mapping):
            if text in script:
                return script[text]
            if self.default is not None:
                return self.default
            raise ModelError(
                f"FakeChatModel has no reply for prompt {text!r}; add it to the script "
                f"(known: {list(script)[:5]!r}...) or pass default="
            )
        if callable(script):
            return str(script(text, i))
        return script[i % len(script)]

    @staticmethod
    def _complete(reply: str, stop: Sequence[str] | None, max_tokens: int) -> Completion:
        kept, stop_end = cut_at_stop(reply, stop)
        # at most one word past the limit: a reply of megabytes costs max_tokens words
        words = list(islice(_WORD.finditer(kept), max_tokens + 1))
        if len(words) > max_tokens:
            return Completion(
                text=kept[: words[max_tokens - 1].end()], tokens=max_tokens, finish_reason="length"
            )
        return Completion(text=kept, tokens=len(words), finish_reason="stop")


def _words(text: str) -> int:
    return len(text.split())
