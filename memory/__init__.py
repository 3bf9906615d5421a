"""Recall: embeddings, the Chroma vector index and free-text memory.

Depends on `graph` only.
"""

from memory.embedder import Embedder, ResolvedModel, resolve_model
from memory.vectors import describe_chroma, open_chroma

__all__ = ["Embedder", "ResolvedModel", "describe_chroma", "open_chroma", "resolve_model"]
