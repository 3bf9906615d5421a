"""What one small Chroma write costs under different HNSW settings (BENCHMARKS.md, "Where the time goes").

Fills an embedded collection with 13,000 random 384-dimension vectors carrying kgmem's metadata, then
times 8 single-item upserts and 5 space-filtered 10-nearest queries, once per setting. Writes under
/tmp/chroma-upsert-cost. Run: python scripts/chroma_upsert_cost.py
"""

from __future__ import annotations

import shutil
import time

import chromadb
import numpy as np
from chromadb.config import Settings

N = 13_000
SETTINGS = {
    "kgmem (batch 1000, sync 50000, resize 2.0)": {"hnsw:batch_size": 1000, "hnsw:sync_threshold": 50_000,
                                                    "hnsw:resize_factor": 2.0},
    "batch 100, sync 50000": {"hnsw:batch_size": 100, "hnsw:sync_threshold": 50_000},
    "batch 1000, sync 1000": {"hnsw:batch_size": 1000, "hnsw:sync_threshold": 1000},
    "Chroma's defaults (batch 100, sync 1000)": {},
}
METADATA = {"space": "s", "type": "observation", "entity_id": "e", "kind": "Thing", "valid_from": 1.0,
            "valid_to": 2.0, "agent": "", "delegation_id": "", "project_id": "", "item": "i", "start": 0, "end": 1}


def main() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N, 384)).astype("float32")
    for number, (name, hnsw) in enumerate(SETTINGS.items()):
        path = f"/tmp/chroma-upsert-cost/{number}"
        shutil.rmtree(path, ignore_errors=True)
        client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
        collection = client.create_collection("cost", metadata={"hnsw:space": "cosine", **hnsw}, embedding_function=None)
        for start in range(0, N, 2000):
            end = min(N, start + 2000)
            collection.upsert(ids=[f"v{i}" for i in range(start, end)], embeddings=vectors[start:end].tolist(),
                              metadatas=[METADATA] * (end - start))
        upserts, queries = [], []
        for i in range(8):
            began = time.perf_counter()
            collection.upsert(ids=[f"probe{i}"], embeddings=[rng.standard_normal(384).tolist()], metadatas=[METADATA])
            upserts.append((time.perf_counter() - began) * 1000)
        for i in range(5):
            began = time.perf_counter()
            collection.query(query_embeddings=[vectors[i].tolist()], n_results=10, where={"space": "s"})
            queries.append((time.perf_counter() - began) * 1000)
        print(f"{name}: upsert ms {[round(x, 1) for x in upserts]}, query ms {[round(x, 1) for x in queries]}")


if __name__ == "__main__":
    main()
