"""Chroma, embedded under the data directory and as a server, with real embeddings."""

import pytest

from memory import open_chroma


def round_trip(client, embedder):
    collection = client.get_or_create_collection("probe", metadata={"hnsw:space": "cosine"})
    texts = ["the churn model overfit on stale features", "the dashboard loads slowly"]
    collection.add(ids=["a", "b"], documents=texts, embeddings=embedder.embed(texts))
    found = collection.query(query_embeddings=[embedder.embed_one("why did churn retraining fail?")], n_results=1)
    return found["ids"][0]


def test_embedded_chroma_persists_under_the_data_directory(settings, embedder):
    assert round_trip(open_chroma(settings), embedder) == ["a"]
    assert settings.chroma_dir.is_dir() and any(settings.chroma_dir.iterdir())
    reopened = open_chroma(settings).get_collection("probe")
    assert reopened.count() == 2


def test_chroma_server_is_used_when_a_host_is_set(settings, embedder, chroma_server):
    host, port = chroma_server
    server_settings = settings.model_copy(update={"chroma_host": host, "chroma_port": port})
    client = open_chroma(server_settings)
    assert client.heartbeat() > 0
    assert round_trip(client, embedder) == ["a"]
    assert not settings.chroma_dir.exists()  # nothing was written locally


@pytest.mark.parametrize("older", [
    {},  # Chroma's defaults, as the first kgmem made its collections: persist every 1,000 writes, grow by 1.2x
    {"hnsw:batch_size": 1000, "hnsw:sync_threshold": 50_000, "hnsw:resize_factor": 2.0},  # as the last one did
], ids=["chroma defaults", "persisting every 50,000 writes"])
def test_collections_grow_in_large_steps_persist_often_and_older_ones_are_upgraded(settings, embedder, older):
    """With Chroma's default HNSW settings tens of thousands of writes inflated link_lists.bin to 68 GB here, so
    kgmem's collections grow by 2x; persisting only every 50,000 writes made each small write cost ~170 ms, so
    they persist every 1,000 (memory/index.py)."""
    from memory.index import VectorIndex, collection_name

    client = open_chroma(settings)
    name = collection_name(embedder.name, embedder.dimension)
    client.get_or_create_collection(name, metadata={"hnsw:space": "cosine", "embedding_model": embedder.name,
                                                    "dimension": embedder.dimension, **older}, embedding_function=None)
    made = client.get_collection(name).configuration["hnsw"]
    assert (made["sync_threshold"], made["resize_factor"]) == ((50_000, 2.0) if older else (1000, 1.2))
    VectorIndex(client, embedder.name, embedder.dimension)
    hnsw = client.get_collection(name).configuration["hnsw"]
    assert (hnsw["sync_threshold"], hnsw["resize_factor"]) == (1000, 2.0)
