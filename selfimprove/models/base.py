"""The one small interface every language-model backend implements.

A backend is anything with a ``name`` and a batched ``generate``: the local
transformers model (``selfimprove.models.local``), any litellm model
(``selfimprove.models.remote``) and the shipped fake
(``selfimprove.testing.FakeChatModel``). Callers depend on ``ChatModel`` only.

This module also holds what the backends share: prompt normalisation, stop-string
truncation, the ``Usage`` counter and ``metering``, which totals what every
backend spends inside a block (the round graph meters each stage with it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from selfimprove.types import Completion

Message = Mapping[str, str]
Prompt = str | Sequence[Message]
"""A plain string (one user message) or a list of chat messages ``{"role", "content"}``."""

ProgressFn = Callable[[int], None]


class ModelError(RuntimeError):
    """A backend could not produce completions (load failure, server down, retries exhausted)."""


class Usage(BaseModel):
    """What a backend has spent so far; backends add to it after every call.

    ``calls`` counts requests for remote APIs and ``generate`` calls for local
    models and fakes.

    ``unpriced_calls`` counts calls whose cost litellm could not price (a local
    server, an unmapped model): they add 0 to ``cost_usd``, so the cost is a lower
    bound whenever ``unpriced_calls > 0``.
    """

    calls: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0.0)
    unpriced_calls: int = Field(default=0, ge=0)

    def add(
        self,
        *,
        calls: int = 1,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float | None = 0.0,
    ) -> None:
        """Add one call's numbers; ``cost_usd=None`` means the cost is unknown.

        Every ``metering`` block open in the caller's context gets the same numbers.
        """
        numbers = (calls, prompt_tokens, completion_tokens, cost_usd)
        self._add(*numbers)
        meters = [m for m in _meters.get() if m is not self]
        if meters:
            with _meter_lock:
                for meter in meters:
                    meter._add(*numbers)

    def _add(
        self, calls: int, prompt_tokens: int, completion_tokens: int, cost_usd: float | None
    ) -> None:
        self.calls += calls
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        if cost_usd is None:
            self.unpriced_calls += calls
        else:
            self.cost_usd += cost_usd

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_meters: ContextVar[tuple[Usage, ...]] = ContextVar("selfimprove_usage_meters", default=())
_meter_lock = threading.Lock()


@contextmanager
def metering() -> Iterator[Usage]:
    """Total what every backend spends inside the block, in this context.

        with metering() as spent:
            model.generate(prompts)
        spent.total_tokens, spent.cost_usd

    Blocks nest (an outer block sees the inner one's calls too). Backends that
    call ``Usage.add`` from worker threads submit their work with a copy of the
    caller's context (``contextvars.copy_context().run``) so the calls are seen.
    """
    spent = Usage()
    token = _meters.set((*_meters.get(), spent))
    try:
        yield spent
    finally:
        _meters.reset(token)


@runtime_checkable
class ChatModel(Protocol):
    """A chat model that completes many prompts at once.

    ``generate`` returns one inner list of ``n`` completions per prompt, in the
    order of ``prompts``. ``temperature=0`` means greedy decoding. A completion is
    cut before the first of ``stop`` it contains (``finish_reason="stop"``, as for
    end-of-sequence); reaching ``max_tokens`` gives ``finish_reason="length"``.
    ``progress`` is called after each internal batch with the number of prompts
    that batch finished (an increment; the calls sum to ``len(prompts)``), so a
    caller can drive a progress bar across several ``generate`` calls. ``seed`` makes sampling
    reproducible where the backend allows it. A backend whose ``continues_final_message``
    attribute is true continues a prompt's final assistant message (a prefill) instead of
    starting a new turn; callers check it before sending one.
    """

    name: str

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
    ) -> list[list[Completion]]: ...


def to_messages(prompt: Prompt, system_prompt: str | None = None) -> list[dict[str, str]]:
    """Normalise a prompt into a list of chat messages, adding ``system_prompt`` if given.

    A system prompt is only added when the prompt has no system message of its own.

    Raises:
        TypeError: the prompt is neither a string nor a list of role/content mappings.
    """
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = []
        for message in prompt:
            if (
                not isinstance(message, Mapping)
                or "role" not in message
                or "content" not in message
            ):
                raise TypeError(
                    f"a chat message must be a mapping with 'role' and 'content', got {message!r}"
                )
            messages.append({"role": str(message["role"]), "content": str(message["content"])})
        if not messages:
            raise TypeError("a prompt given as a message list must hold at least one message")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def prompt_text(prompt: Prompt) -> str:
    """The text a prompt asks: the string itself, or the last message's content."""
    if isinstance(prompt, str):
        return prompt
    return to_messages(prompt)[-1]["content"]


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, int | None]:
    """Cut ``text`` before the earliest stop string.

    Returns:
        The kept text, and the index just past the stop string that matched
        (``None`` when no stop string occurs).
    """
    best: tuple[int, int] | None = None
    for s in stop or ():
        if not s:
            continue
        at = text.find(s)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, at + len(s))
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def check_generate_args(n: int, temperature: float, max_tokens: int) -> None:
    """Reject arguments no backend can honour, naming the bad value."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature!r}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens!r}")
