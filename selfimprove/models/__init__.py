"""Language-model backends behind one small interface, ``ChatModel``.

    from selfimprove.config import ModelConfig
    from selfimprove.models import load_model
    student = load_model(ModelConfig())                   # embedded SmolLM2-135M-Instruct
    [[c]] = student.generate(["What is 2 + 2?"], max_tokens=16)
    print(c.text, c.tokens, c.finish_reason)

Backends: ``TransformersModel`` (local, batched, CPU or GPU) and ``LiteLLMModel``
(hosted APIs and OpenAI-compatible servers). ``selfimprove.testing.FakeChatModel``
is the scripted stand-in for tests. The heavy libraries (torch, transformers,
litellm) are imported only when a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfimprove.config import ModelConfig
from selfimprove.models.base import ChatModel, ModelError, Prompt, Usage
from selfimprove.models.student import EMBEDDED_STUDENT, resolve_model_path

if TYPE_CHECKING:
    from selfimprove.models.local import TransformersModel
    from selfimprove.models.remote import LiteLLMModel

__all__ = [
    "ChatModel",
    "EMBEDDED_STUDENT",
    "LiteLLMModel",
    "ModelError",
    "Prompt",
    "TransformersModel",
    "Usage",
    "load_model",
    "resolve_model_path",
]


def load_model(config: ModelConfig) -> ChatModel:
    """Build the backend a ``ModelConfig`` describes.

    Raises:
        ModelError: no model is named, or it cannot be found or loaded (the
            message says why).
    """
    if not config.model:
        raise ModelError(
            f"no model configured (model={config.model!r}); name an embedded model, "
            "a folder, a hub id or a litellm model string"
        )
    if config.backend == "litellm":
        from selfimprove.models.remote import LiteLLMModel

        return LiteLLMModel.from_config(config)
    from selfimprove.models.local import TransformersModel

    return TransformersModel.from_config(config)


def __getattr__(name: str) -> object:
    # Lazy so that `import selfimprove.models` stays cheap (no torch, no litellm).
    if name == "TransformersModel":
        from selfimprove.models.local import TransformersModel

        return TransformersModel
    if name == "LiteLLMModel":
        from selfimprove.models.remote import LiteLLMModel

        return LiteLLMModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
