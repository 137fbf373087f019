"""Shipped test doubles: use them in your own tests instead of mocks.

- ``FakeChatModel``: a scripted ``ChatModel`` (no model, instant).
- ``FakeToolChat``: a langchain chat model that emits scripted tool calls, to drive
  the console's operator agent (``selfimprove.console.operator``) without an LLM.
- ``start_scripted_run(out_dir, ...)``: the real round graph, loop driver and run
  folder with instant fake parts, for anything that watches or steers a run.
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
    "FakeToolChat",
    "Script",
    "TINY_MODEL_VERSION",
    "start_scripted_run",
    "tiny_model",
]


def __getattr__(name: str) -> object:  # these import langchain / langgraph: load on use
    if name == "FakeToolChat":
        from selfimprove.testing.operator import FakeToolChat

        return FakeToolChat
    if name == "start_scripted_run":
        from selfimprove.testing.runs import start_scripted_run

        return start_scripted_run
    raise AttributeError(f"module 'selfimprove.testing' has no attribute {name!r}")
