"""Local generation with Hugging Face transformers, batched, on CPU or GPU.

    from selfimprove.models.local import TransformersModel
    model = TransformersModel.load("smollm2-135m-instruct")      # or a folder, or a hub id
    [[answer]] = model.generate(["What is 17 + 25?"], max_tokens=32)

Prompts are rendered with the tokenizer's chat template, sorted by length and
generated ``batch_size`` rows at a time with left padding; results come back in
the caller's order. Greedy when ``temperature == 0``; otherwise plain temperature
sampling (top-k/top-p only if the model's generation config sets them), seeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.utils import logging as hf_logging

from selfimprove.config import ModelConfig
from selfimprove.models.base import (
    ModelError,
    ProgressFn,
    Prompt,
    Usage,
    check_generate_args,
    cut_at_stop,
    to_messages,
)
from selfimprove.models.decode import decode_compact, supports_compact
from selfimprove.models.student import resolve_model_path
from selfimprove.types import Completion

logger = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else CPU.

    Raises:
        ModelError: ``"cuda"`` was asked for but no CUDA device is visible.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but torch sees no CUDA device; use 'cpu'")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` means bfloat16 where the hardware computes in it natively, else float32.

    That is a CUDA device with bf16 support, or a CPU with AVX512-BF16 or AMX
    instructions (about 2x faster generation than float32 on such a CPU, with the
    same held-out accuracy within noise: 23.5% vs 21.0% on the built-in suites).
    """
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise ModelError(
            f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16"
        ) from None


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class TransformersModel:
    """A ``ChatModel`` over an in-memory transformers causal LM and its tokenizer.

    Build one with ``TransformersModel.load(name_or_path)`` or
    ``from_config(ModelConfig)``; or wrap objects you already hold (a freshly
    trained model) with the constructor.

    Args:
        model: a ``PreTrainedModel`` for causal LM, already on its device.
        tokenizer: its tokenizer (left unchanged: padding is done here, on the left).
        name: what ``name`` reports (defaults to the model's name or path).
        batch_size: rows (prompt x sample) generated together.
        system_prompt: prepended as a system message when a prompt has none.
        seed: base seed; a call without ``seed`` uses ``seed + number of calls so far``,
            so a run is reproducible while successive calls still differ.
        compact: decode with ``selfimprove.models.decode.decode_compact`` (finished rows
            leave the batch); ``None``: wherever the architecture supports it, else
            ``model.generate``.
    """

    continues_final_message = True
    """A prompt ending with an assistant message is continued (see ``render``)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str | None = None,
        batch_size: int = 16,
        system_prompt: str | None = None,
        seed: int = 0,
        compact: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or str(getattr(model, "name_or_path", "") or "transformers")
        self.batch_size = batch_size
        self.system_prompt = system_prompt
        self.seed = seed
        self.usage = Usage()
        self._calls = 0
        self._eos_ids = _eos_ids(model, tokenizer)
        # Decoder-only models often have no pad token; any id works under the mask.
        pad = tokenizer.pad_token_id
        self._pad_id: int = pad if pad is not None else min(self._eos_ids)
        # Drop finished rows from the batch while decoding, where the architecture allows.
        self.compact = supports_compact(model) if compact is None else compact

    @classmethod
    def load(
        cls,
        name_or_path: str = "smollm2-135m-instruct",
        *,
        device: str = "auto",
        dtype: str = "auto",
        **kwargs: Any,
    ) -> TransformersModel:
        """Load a model by embedded name, folder or hub id (see ``resolve_model_path``).

        Extra keyword arguments go to the constructor (``batch_size``, ``seed``, ...).
        """
        path = resolve_model_path(name_or_path)
        torch_device = pick_device(device)
        torch_dtype = pick_dtype(dtype, torch_device)
        started = time.perf_counter()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a bar per load would bury the run's own bars
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load model {str(name_or_path)!r} from {path!r}: {exc}"
            ) from exc
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        model.to(torch_device)
        logger.info(
            "loaded %s on %s (%s) in %.1f s",
            name_or_path,
            torch_device,
            torch_dtype,
            time.perf_counter() - started,
        )
        kwargs.setdefault("name", str(name_or_path))
        return cls(model, tokenizer, **kwargs)

    @classmethod
    def from_config(cls, config: ModelConfig) -> TransformersModel:
        """Load the model a ``ModelConfig`` with ``backend: transformers`` describes."""
        return cls.load(
            config.model,
            device=config.device,
            dtype=config.dtype,
            batch_size=config.batch_size,
            system_prompt=config.system_prompt,
            seed=config.seed,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees for ``prompt`` (chat template + generation prompt).

        A message list that ends with an assistant message is rendered open, so the
        model continues that message (a prefill, e.g. the start of a JSON reply);
        the completion holds only the continuation.

        Raises:
            ModelError: the prompt is a message list but the tokenizer has no chat template.
        """
        messages = to_messages(prompt, self.system_prompt)
        if self.tokenizer.chat_template:
            # A final assistant message is a prefill: the model continues it.
            prefill = messages[-1]["role"] == "assistant"
            return self.tokenizer.apply_chat_template(
                messages,
                tokenize=False,
                add_generation_prompt=not prefill,
                continue_final_message=prefill,
            )
        if isinstance(prompt, str):
            # A base model without a chat template: continue the raw text.
            return f"{self.system_prompt}\n\n{prompt}" if self.system_prompt else prompt
        raise ModelError(
            f"model {self.name!r} has no chat template, so it cannot take chat messages "
            f"({prompt!r}); pass plain strings, or set tokenizer.chat_template"
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

        Greedy calls (``temperature == 0``) generate each prompt once and repeat the
        result ``n`` times, since greedy samples are identical.
        """
        check_generate_args(n, temperature, max_tokens)
        stop = [s for s in stop or () if s]
        if seed is None:
            seed = self.seed + self._calls
        self._calls += 1
        encoded = [self._encode(p) for p in prompts]
        samples = 1 if temperature == 0 else n
        # Longest prompts first: rows of similar length share a batch (less padding)
        # and an out-of-memory error shows up in the first batch, not the last.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        if self.compact and 1 < samples <= self.batch_size:
            # Whole prompts per batch, so their samples share one prefill.
            per = self.batch_size // samples
            batches = [(order[s : s + per], samples) for s in range(0, len(order), per)]
        else:
            rows = [i for i in order for _ in range(samples)]
            batches = [
                (rows[s : s + self.batch_size], 1) for s in range(0, len(rows), self.batch_size)
            ]
        results: list[list[Completion]] = [[] for _ in prompts]
        config = self._generation_config(temperature, max_tokens)
        reported = 0
        with torch.random.fork_rng(devices=self._rng_devices()), torch.inference_mode():
            torch.manual_seed(seed)
            for batch, repeats in batches:
                outputs = self._generate_batch([encoded[i] for i in batch], config, stop, repeats)
                for j, completion in enumerate(outputs):
                    results[batch[j // repeats]].append(completion)
                if progress is not None:
                    done = sum(len(r) == samples for r in results)
                    progress(done - reported)
                    reported = done
        self.usage.add(
            prompt_tokens=samples * sum(len(ids) for ids in encoded),
            completion_tokens=sum(c.tokens for r in results for c in r),
        )
        if samples < n:
            results = [r * n for r in results]
        return results

    def _encode(self, prompt: Prompt) -> list[int]:
        # The chat template already adds BOS where the model wants one.
        add_special = not self.tokenizer.chat_template
        return self.tokenizer(self.render(prompt), add_special_tokens=add_special)["input_ids"]

    def _rng_devices(self) -> list[int]:
        device = self.device
        return [device.index or 0] if device.type == "cuda" else []

    def _generation_config(self, temperature: float, max_tokens: int) -> Any:
        own = self.model.generation_config
        settings: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "num_beams": 1,
            "pad_token_id": self._pad_id,
            "eos_token_id": sorted(self._eos_ids),
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            # Plain temperature sampling like chat APIs; transformers would otherwise
            # add top_k=50 when the model's generation config leaves top_k unset.
            settings.update(temperature=temperature, top_k=own.top_k or 0, top_p=own.top_p or 1.0)
        return GenerationConfig(**settings)

    def _generate_batch(
        self, batch: list[list[int]], config: Any, stop: Sequence[str], repeats: int = 1
    ) -> list[Completion]:
        padded = _left_pad(batch, self._pad_id, self.device)
        if self.compact:
            sample = bool(config.do_sample)
            new = decode_compact(
                self.model,
                padded["input_ids"],
                padded["attention_mask"],
                max_tokens=config.max_new_tokens,
                eos_ids=self._eos_ids,
                temperature=config.temperature if sample else 0.0,
                top_k=(config.top_k or 0) if sample else 0,
                top_p=(config.top_p or 1.0) if sample else 1.0,
                stopped=_stop_checker(self.tokenizer, stop) if stop else None,
                repeats=repeats,
            )
            return [self._finish(ids, stop, config.max_new_tokens) for ids in new]
        prompt_len = padded["input_ids"].shape[1]
        criteria = StoppingCriteriaList()
        if stop:
            criteria.append(_StopOnText(self.tokenizer, stop, prompt_len))
        out = self.model.generate(**padded, generation_config=config, stopping_criteria=criteria)
        new = out[:, prompt_len:].tolist()
        return [self._finish(ids, stop, config.max_new_tokens) for ids in new]

    def _finish(self, ids: list[int], stop: Sequence[str], max_tokens: int) -> Completion:
        """Turn one row of generated ids into a Completion: cut at EOS and stop strings."""
        eos_at = next((k for k, t in enumerate(ids) if t in self._eos_ids), None)
        if eos_at is not None:
            ids = ids[:eos_at]
        elif self._pad_id not in self._eos_ids:
            # A row ended early by a stop string is padded up to the batch's length.
            while ids and ids[-1] == self._pad_id:
                ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        kept, stop_end = cut_at_stop(text, stop)
        if stop_end is not None:
            return Completion(
                text=kept, tokens=self._tokens_for(ids, stop_end), finish_reason="stop"
            )
        ended = eos_at is not None or len(ids) < max_tokens
        return Completion(text=text, tokens=len(ids), finish_reason="stop" if ended else "length")

    def _tokens_for(self, ids: list[int], chars: int) -> int:
        """The fewest leading tokens of ``ids`` whose text reaches ``chars`` characters."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self.tokenizer.decode(ids[:mid], skip_special_tokens=True)) >= chars:
                hi = mid
            else:
                lo = mid + 1
        return hi


def _left_pad(batch: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-pad rows so every prompt ends where generation starts.

    Done here rather than with ``tokenizer.pad`` so the caller's tokenizer keeps
    its own padding side (trainers sharing it usually pad on the right).
    """
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


def _stop_checker(tokenizer: Any, stop: Sequence[str]) -> Callable[[list[int]], bool]:
    """Whether a row's generated ids hold a stop string, decoding only their tail.

    It runs after every step, so it decodes just enough trailing tokens to hold the
    longest stop string: a token decodes to at least one character (special tokens
    aside, hence the slack).
    """
    window = max(len(s) for s in stop) + 4

    def stopped(ids: list[int]) -> bool:
        tail = tokenizer.decode(ids[-window:], skip_special_tokens=True)
        return any(s in tail for s in stop)

    return stopped


class _StopOnText(StoppingCriteria):
    """Ends a row once its generated text contains a stop string.

    transformers' own ``stop_strings`` also matches across the prompt boundary (a
    prompt ending in "\\n" plus a generated "\\n" stops on "\\n\\n"), which would end
    rows before their text holds the stop string. This looks at generated tokens
    only, with the same check ``decode_compact`` uses (``_stop_checker``).
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_len: int) -> None:
        super().__init__()
        self.stopped = _stop_checker(tokenizer, stop)
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        rows = input_ids[:, self.prompt_len :].tolist()
        hit = [self.stopped(row) for row in rows]
        return torch.tensor(hit, dtype=torch.bool, device=input_ids.device)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a turn: the generation config's EOS ids and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(t) for t in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if not ids:
        raise ModelError(
            f"model {getattr(model, 'name_or_path', '?')!r} defines no end-of-sequence token; "
            "set generation_config.eos_token_id or tokenizer.eos_token"
        )
    return ids
