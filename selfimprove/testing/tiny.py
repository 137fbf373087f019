"""``tiny_model()``: a ~1M-parameter random Llama with a real tokenizer, for fast tests.

    from selfimprove.testing import tiny_model
    from selfimprove.models.local import TransformersModel
    model = TransformersModel.load(str(tiny_model()))    # built once, then cached

The folder is a complete Hugging Face model: a BPE tokenizer trained here on a
small generated corpus (digits one per token, arithmetic, English words, Python
keywords) with ChatML special tokens, pad/eos set and a ChatML chat template, and
a randomly initialised ``LlamaForCausalLM``. So tests exercise the real
transformers path (batching, chat templates, stop strings, TRL training) in
seconds. The same seed gives byte-identical weights and tokenizer.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from selfimprove.config import home_dir
from selfimprove.models.cache import build_atomically, is_complete

TINY_MODEL_VERSION = "1"
"""Bump when the recipe below changes, so stale cached folders are not reused."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]

_WORD_TEXT = (
    "the a an and or but if then else is are was be of to in on at for with from by as it this "
    "that what which who how many much more less than larger smaller number numbers sum answer "
    "question add plus minus times equals result write return value word words letter letters "
    "upper uppercase lower count reverse first last sort list string function code test true "
    "false yes no one two three four five six seven eight nine ten hundred apple banana cat dog "
    "house tree river mountain city book water light day night red blue green small big"
)
_KEYWORD_TEXT = (
    "def return if elif else for while in not and or is None True False import from class "
    "lambda try except finally with as pass break continue yield assert raise print len range"
)
_WORDS = _WORD_TEXT.split()
_PY_KEYWORDS = _KEYWORD_TEXT.split()
_TINY_LLAMA: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}


def tiny_model(path: Path | None = None, *, seed: int = 0, vocab_size: int = 1024) -> Path:
    """Build (once) and return the folder of a tiny random Llama with its tokenizer.

    Args:
        path: where to put it; defaults to ``home_dir()/models/tiny-llama-v<version>``
            (with ``-seed<seed>`` appended for a seed other than 0).
        seed: seeds the corpus, the tokenizer training and the weights.
        vocab_size: the BPE vocabulary size (special tokens included).

    Returns:
        The folder; an existing complete folder there is reused as is.
    """
    if path is None:
        suffix = "" if seed == 0 else f"-seed{seed}"
        path = home_dir() / "models" / f"tiny-llama-v{TINY_MODEL_VERSION}{suffix}"
    path = Path(path)
    if is_complete(path):
        return path

    def build(folder: Path) -> dict[str, Any]:
        tokenizer = build_tokenizer(seed=seed, vocab_size=vocab_size)
        model = build_model(tokenizer, seed=seed)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        params = sum(p.numel() for p in model.parameters())
        return {
            "source": "tiny_model",
            "version": TINY_MODEL_VERSION,
            "seed": seed,
            "vocab_size": len(tokenizer),
            "parameters": params,
        }

    return build_atomically(path, build)


def build_tokenizer(*, seed: int = 0, vocab_size: int = 1024) -> Any:
    """Train a byte-level BPE tokenizer on the generated corpus; return it wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    # Digits one per token: arithmetic is then learnable digit by digit.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(seed), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
        padding_side="left",
        model_max_length=_TINY_LLAMA["max_position_embeddings"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_model(tokenizer: Any, *, seed: int = 0) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` sized for ``tokenizer`` (~1M parameters)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **_TINY_LLAMA,
    )
    # Seed a private RNG stream so building a model leaves the caller's RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model.eval()


def _corpus(seed: int, lines: int = 6000) -> list[str]:
    """Generated training text: arithmetic, comparisons, English and Python snippets."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        kind = rng.randrange(5)
        if kind == 0:
            op = rng.choice("+-*")
            value = a + b if op == "+" else a - b if op == "-" else a * b
            out.append(f"What is {a} {op} {b}? {a} {op} {b} = {value}")
        elif kind == 1:
            out.append(f"Which number is larger, {a} or {b}? The answer is {max(a, b)}.")
        elif kind == 2:
            word = rng.choice(_WORDS)
            out.append(f"Write the word {word} in uppercase: {word.upper()}")
        elif kind == 3:
            out.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))) + ".")
        else:
            name, k = rng.choice(_WORDS), rng.randint(1, 9)
            out.append(
                f"def {name}_{k}(x):\n    return x {rng.choice('+-*')} {k}\n"
                + " ".join(rng.sample(_PY_KEYWORDS, 6))
            )
    return out
