"""Chroma, embedded under the data directory and as a server, with real embeddings."""

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


def test_collections_persist_in_few_large_cycles_and_older_ones_are_upgraded(settings, embedder):
    """With Chroma's default HNSW settings (persist every 1,000 writes, grow by 1.2x), tens of thousands of
    writes inflated link_lists.bin to 68 GB here; kgmem's collections persist and grow in larger steps."""
    from memory.index import VectorIndex, collection_name

    client = open_chroma(settings)
    name = collection_name(embedder.name, embedder.dimension)
    client.get_or_create_collection(name, metadata={"hnsw:space": "cosine", "embedding_model": embedder.name,
                                                    "dimension": embedder.dimension}, embedding_function=None)
    assert client.get_collection(name).configuration["hnsw"]["sync_threshold"] == 1000  # as an older kgmem made it
    VectorIndex(client, embedder.name, embedder.dimension)
    hnsw = client.get_collection(name).configuration["hnsw"]
    assert (hnsw["sync_threshold"], hnsw["resize_factor"]) == (50_000, 2.0)
