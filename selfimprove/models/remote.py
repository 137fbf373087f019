"""Any litellm model as a ``ChatModel``: hosted APIs and OpenAI-compatible servers.

    from selfimprove.models.remote import LiteLLMModel
    teacher = LiteLLMModel("openai/gpt-4o-mini", api_key=key)
    local = LiteLLMModel("openai/my-model", api_base="http://127.0.0.1:8000/v1")  # vLLM etc.
    fake = LiteLLMModel("openai/x", mock_response="42")                            # no network

Chat APIs take one prompt per request, so a batch runs as concurrent requests
(a bounded thread pool). Rate limits, 5xx answers, timeouts and connection errors
are retried with exponential backoff and jitter (at least the server's Retry-After);
after the last retry, or at once for errors retrying cannot fix (bad key, unknown
model), a ``ModelError`` names the model and the api_base and says what to do.
litellm is imported lazily (it takes ~6 s) and only after ``setup_environment()``,
which stops it fetching its cost map from the internet.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextvars import copy_context
from typing import Any

from selfimprove.config import ModelConfig, secret, setup_environment
from selfimprove.models.base import (
    ModelError,
    ProgressFn,
    Prompt,
    Usage,
    check_generate_args,
    cut_at_stop,
    to_messages,
)
from selfimprove.types import Completion

logger = logging.getLogger(__name__)

MockResponse = str | Callable[[list[dict[str, str]]], str]
"""A fixed reply (or a litellm error name such as ``"litellm.RateLimitError"``), or a
callable from the request's messages to one, called once per request."""

_RETRY_STATUS = frozenset({408, 409, 429})


def _litellm() -> Any:
    setup_environment()  # before the import: LITELLM_LOCAL_MODEL_COST_MAP, telemetry off
    import litellm

    # Otherwise every exception also prints a "Give Feedback / Get Help" banner to stdout.
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMModel:
    """A ``ChatModel`` that sends each prompt to a litellm model.

    Args:
        model: a litellm model string, e.g. ``"openai/gpt-4o-mini"``, or
            ``"openai/<served name>"`` with ``api_base`` for an OpenAI-compatible server.
        api_base: the server's base URL, e.g. ``"http://127.0.0.1:8000/v1"``.
        api_key: the key; with ``api_base`` and no key, ``"none"`` is sent (local
            servers want some key). Without both, litellm uses the provider's usual
            environment variable.
        max_concurrency: requests in flight at once.
        timeout_s: per-request timeout.
        max_retries: retries after the first attempt for transient errors.
        backoff_s: first retry delay; doubles each retry, capped at ``max_backoff_s``,
            and is scaled by a random factor in [0.5, 1] so clients do not retry in step.
        system_prompt: prepended as a system message when a prompt has none.
        mock_response: passed to litellm so no request leaves the process (tests).
        name: what ``name`` reports; defaults to ``model``.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        system_prompt: str | None = None,
        mock_response: MockResponse | None = None,
        name: str | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self.model = model
        self.name = name or model
        self.api_base = api_base
        self.api_key = api_key if api_key is not None else ("none" if api_base else None)
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.system_prompt = system_prompt
        self.mock_response = mock_response
        self.usage = Usage()
        self._lock = threading.Lock()
        self._rng = random.Random()

    @classmethod
    def from_config(cls, config: ModelConfig) -> LiteLLMModel:
        """Build from a ``ModelConfig`` with ``backend: litellm``; the key comes from
        the environment variable named by ``api_key_env``.

        Raises:
            ModelError: ``api_key_env`` names a variable that is unset or empty.
        """
        api_key = api_key_from(config)
        return cls(
            config.model,
            api_base=config.api_base,
            api_key=api_key,
            max_concurrency=config.batch_size,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            system_prompt=config.system_prompt,
        )

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
        """Complete every prompt ``n`` times; see ``selfimprove.models.base.ChatModel``.

        Greedy calls (``temperature == 0``) make one request per prompt and repeat
        the answer ``n`` times. Requests run concurrently; ``progress`` is called
        as each prompt finishes.

        Raises:
            ModelError: a request failed for good (retries exhausted, or an error
                that retrying cannot fix such as a bad key or an unknown model).
        """
        check_generate_args(n, temperature, max_tokens)
        stop = [s for s in stop or () if s]
        conversations = [to_messages(p, self.system_prompt) for p in prompts]
        samples = 1 if temperature == 0 else n
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if stop:
            params["stop"] = stop
        if seed is not None:
            params["seed"] = seed
        results: list[list[Completion]] = [[] for _ in prompts]
        if not prompts:
            return results
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts)))
        try:
            futures = {
                # Each request runs in a copy of the caller's context: usage meters see it.
                pool.submit(copy_context().run, self._sample, messages, samples, params, stop): i
                for i, messages in enumerate(conversations)
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
        finally:
            # On failure, do not start the queued requests; running ones finish.
            pool.shutdown(wait=True, cancel_futures=True)
        return [r * n for r in results] if samples < n else results

    def _sample(
        self, messages: list[dict[str, str]], n: int, params: dict[str, Any], stop: Sequence[str]
    ) -> list[Completion]:
        """``n`` completions of one conversation: ask for ``n`` choices, top up if fewer come."""
        out: list[Completion] = []
        request = 0
        while len(out) < n:
            call = dict(params)
            if n - len(out) > 1:
                call["n"] = n - len(out)
            if request and "seed" in call:
                call["seed"] += request  # a repeated request with the same seed repeats itself
            got = self._to_completions(self._request(messages, call), stop)
            if not got:
                raise ModelError(
                    f"{self._where} returned no choices; "
                    "check that the server implements chat completions"
                )
            out.extend(got)
            request += 1
        return out[:n]

    def _request(self, messages: list[dict[str, str]], params: dict[str, Any]) -> Any:
        """One chat-completions request with retries; accounts usage on success."""
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "timeout": self.timeout_s,
            # Retries are ours; litellm's and the OpenAI client's would multiply them.
            "num_retries": 0,
            "max_retries": 0,
            # Providers that lack n or seed drop them instead of failing (n is topped up).
            "drop_params": True,
            **params,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        for attempt in range(self.max_retries + 1):
            if self.mock_response is not None:
                mock = self.mock_response
                kwargs["mock_response"] = mock(messages) if callable(mock) else mock
            try:
                response = litellm.completion(**kwargs)
            except Exception as exc:
                transient = _is_transient(exc, litellm)
                if not transient or attempt == self.max_retries:
                    raise ModelError(self._describe_failure(exc, attempt + 1, transient)) from exc
                delay = self._delay(attempt, exc)
                logger.warning(
                    "%s: %s; retry %d/%d in %.2f s",
                    self.model,
                    type(exc).__name__,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)
            else:
                self._account(response, litellm)
                return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def _delay(self, attempt: int, exc: Exception) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        with self._lock:
            delay *= 0.5 + 0.5 * self._rng.random()
        retry_after = _retry_after_s(exc)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        return delay

    @property
    def _where(self) -> str:
        return f"model {self.model!r}" + (
            f" at api_base {self.api_base!r}" if self.api_base else ""
        )

    def _describe_failure(self, exc: Exception, attempts: int, transient: bool) -> str:
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
        if not transient:
            what = "failed with an error that retrying cannot fix"
        else:
            what = f"failed after {attempts} attempts"
        return f"{self._where} {what}: {detail}; {self._what_to_do(exc)}"

    def _what_to_do(self, exc: Exception) -> str:
        """The hint that ends a ``ModelError``: what the user can change, by kind of failure."""
        status = getattr(exc, "status_code", None)
        kind = type(exc).__name__
        if status == 401:
            return "check the API key (the variable api_key_env names, or api_key)"
        if status == 403:
            return "check that the API key may use this model"
        if status == 404:
            served = " and that the server at api_base serves it" if self.api_base else ""
            return f"check the model name{served}"
        if kind == "ContextWindowExceededError":
            return "the prompt is longer than the model's context: use a model with a longer one"
        if status == 400 or kind in ("BadRequestError", "UnsupportedParamsError"):
            return "check the request's parameters (max_tokens, stop, n) against the model"
        if status == 429:
            return (
                "the provider is rate limiting: lower the model's batch_size (requests in "
                "flight) or raise your quota, then resume the run"
            )
        if status == 408 or "Timeout" in kind:
            return (
                f"no reply within timeout_s={self.timeout_s:g}: raise timeout_s or check "
                "the server's load"
            )
        if self.api_base:
            return (
                "check that the server is running and reachable and that api_base points "
                "at its OpenAI-compatible /v1"
            )
        return "check the provider's status, your quota and the network"

    def _account(self, response: Any, litellm: Any) -> None:
        usage = getattr(response, "usage", None)
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=response))
        except Exception:  # litellm raises assorted errors for models it cannot price
            cost = None
        with self._lock:
            self.usage.add(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                cost_usd=cost,
            )

    def _to_completions(self, response: Any, stop: Sequence[str]) -> list[Completion]:
        texts: list[str] = []
        reasons: list[str] = []
        for choice in response.choices:
            text = choice.message.content or ""
            # Servers that ignore `stop` still get their text cut at it.
            kept, stop_end = cut_at_stop(text, stop)
            texts.append(kept)
            reasons.append(
                "stop" if stop_end is not None or choice.finish_reason != "length" else "length"
            )
        usage = getattr(response, "usage", None)
        total = int(getattr(usage, "completion_tokens", 0) or 0)
        tokens = _split_tokens(total, [len(t) for t in texts])
        return [
            Completion(text=t, tokens=k, finish_reason=r)  # type: ignore[arg-type]
            for t, k, r in zip(texts, tokens, reasons, strict=True)
        ]


def _is_transient(exc: Exception, litellm: Any) -> bool:
    """Rate limits, server errors, timeouts and connection failures: worth retrying."""
    transient = (
        litellm.RateLimitError,
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.BadGatewayError,
    )
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status in _RETRY_STATUS or status >= 500)


def _retry_after_s(exc: Exception) -> float | None:
    """The server's Retry-After header, when it sent one as a number of seconds."""
    # litellm keeps the server's headers in litellm_response_headers; the response it
    # attaches to its own exceptions is rebuilt without them.
    for headers in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        try:
            value = headers.get("retry-after") if headers else None
            if value is not None:
                return float(value)
        except (AttributeError, TypeError, ValueError):  # an HTTP date, or odd headers
            pass
    return None


def _split_tokens(total: int, weights: list[int]) -> list[int]:
    """Share a response's completion tokens among its choices, by text length.

    Providers report one total for all ``n`` choices; the split is an estimate
    that still adds up to the total.
    """
    if len(weights) == 1:
        return [total]
    if not weights:
        return []
    scale = sum(weights) or len(weights)
    shares = [total * (w if sum(weights) else 1) / scale for w in weights]
    tokens = [int(s) for s in shares]
    leftovers = sorted(range(len(shares)), key=lambda i: tokens[i] - shares[i])
    for i in leftovers[: total - sum(tokens)]:
        tokens[i] += 1
    return tokens


def api_key_from(config: Any) -> str | None:
    """The API key named by ``config.api_key_env`` (None when no variable is named).

    Raises:
        ModelError: the named variable is unset or empty.
    """
    if not config.api_key_env:
        return None
    api_key = secret(config.api_key_env)
    if api_key is None:
        raise ModelError(
            f"model {config.model!r} reads its API key from ${config.api_key_env}, which "
            f"is unset or empty; export {config.api_key_env}=... or remove api_key_env"
        )
    return api_key
