"""Shipped test doubles: use them in your own tests instead of mocks.

- ``FakeChatModel``: a scripted ``ChatModel`` (no model, instant).
- ``tiny_model()``: the folder of a ~1M-parameter random Llama with a real
  tokenizer and chat template, built in seconds and cached, so tests can run the
  real transformers (and TRL) code paths.

For embeddings without a model, use ``selfimprove.memory.HashEmbeddings``
(``StoreConfig(embedding="hash")``): deterministic hashed n-grams, instant.
"""

from __future__ import annotations

from selfimprove.testing.fakes import FakeCall, FakeChatModel, Script
from selfimprove.testing.tiny import TINY_MODEL_VERSION, tiny_model

__all__ = [
    "FakeCall",
    "FakeChatModel",
    "Script",
    "TINY_MODEL_VERSION",
    "tiny_model",
]
