"""Optional cross-encoder reranking of recall's best candidates (`KGMEM_RERANKER_MODEL`).

A cross-encoder reads the query and each candidate together, which ranks better than
comparing two separately made vectors, but costs one model pass per candidate: so it
only reorders the top `rerank_top` fused results.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from graph.errors import ConfigurationError


class Reranker:
    def __init__(self, model: str, *, device: str | None = None) -> None:
        self.model_name = model
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import CrossEncoder

                    location = str(Path(self.model_name).expanduser()) if Path(self.model_name).expanduser().exists() else self.model_name
                    try:
                        self._model = CrossEncoder(location, device=self.device, num_labels=1)
                    except OSError as exc:
                        raise ConfigurationError(f"reranker model {self.model_name!r} could not be loaded: {exc}") from exc
        return self._model

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(s) for s in self._load().predict([(query, text) for text in texts], show_progress_bar=False)]
