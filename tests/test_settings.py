"""Settings: one typed object fed by environment variables and an optional TOML file."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from graph.settings import Settings

ENV_NAMES = [
    "KGMEM_HOME", "KGMEM_CONFIG", "NEO4J_URI", "NEO4J_USERNAME", "NEO4J_PASSWORD", "NEO4J_DATABASE",
    "KGMEM_CHROMA_HOST", "KGMEM_CHROMA_PORT", "KGMEM_API_PORT", "XDG_DATA_HOME", "KGMEM_NEO4J_BOLT_PORT",
]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_defaults_are_the_embedded_configuration(clean_env, tmp_path):
    settings = Settings()
    assert settings.home == tmp_path / "user" / ".local" / "share" / "kgmem"
    assert settings.managed_neo4j
    assert settings.chroma_host is None
    assert settings.chroma_dir == settings.home / "chroma"
    assert settings.embedding_model == "all-MiniLM-L6-v2"
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert (settings.neo4j_bolt_port, settings.neo4j_http_port) == (7687, 7474)


def test_kgmem_home_moves_the_data_directory(clean_env, tmp_path):
    clean_env.setenv("KGMEM_HOME", str(tmp_path / "elsewhere"))
    settings = Settings()
    assert settings.home == tmp_path / "elsewhere"
    assert settings.neo4j_dir == tmp_path / "elsewhere" / "neo4j"


def test_standard_neo4j_variables_switch_off_the_managed_server(clean_env):
    clean_env.setenv("NEO4J_URI", "neo4j+s://example.databases.neo4j.io")
    clean_env.setenv("NEO4J_USERNAME", "analyst")
    clean_env.setenv("NEO4J_PASSWORD", "s3cret")
    clean_env.setenv("NEO4J_DATABASE", "memory")
    settings = Settings()
    assert not settings.managed_neo4j
    assert settings.neo4j_uri == "neo4j+s://example.databases.neo4j.io"
    assert settings.neo4j_username == "analyst"
    assert settings.neo4j_password.get_secret_value() == "s3cret"
    assert settings.neo4j_database == "memory"


def test_chroma_host_switches_to_a_server(clean_env):
    clean_env.setenv("KGMEM_CHROMA_HOST", "chroma")
    clean_env.setenv("KGMEM_CHROMA_PORT", "8001")
    settings = Settings()
    assert (settings.chroma_host, settings.chroma_port) == ("chroma", 8001)


def test_config_file_is_read_and_environment_wins(clean_env, tmp_path):
    config = tmp_path / "kgmem.toml"
    config.write_text('api_port = 9100\nembedding_model = "paraphrase-MiniLM-L3-v2"\n')
    clean_env.setenv("KGMEM_CONFIG", str(config))
    clean_env.setenv("KGMEM_API_PORT", "9200")
    settings = Settings()
    assert settings.embedding_model == "paraphrase-MiniLM-L3-v2"
    assert settings.api_port == 9200


def test_config_file_in_the_data_directory_is_found(clean_env, tmp_path):
    home = tmp_path / "data"
    home.mkdir()
    (home / "kgmem.toml").write_text("neo4j_heap = \"1g\"\n")
    clean_env.setenv("KGMEM_HOME", str(home))
    assert Settings().neo4j_heap == "1g"


def test_invalid_values_name_the_setting(clean_env):
    clean_env.setenv("KGMEM_NEO4J_BOLT_PORT", "99999")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "neo4j_bolt_port" in str(error.value)


def test_public_view_masks_the_password(clean_env):
    settings = Settings(neo4j_uri="bolt://db:7687", neo4j_password="hunter2")
    shown = settings.public_dict()
    assert shown["neo4j_password"] == "********"
    assert "hunter2" not in str(shown)
    assert isinstance(Path(shown["home"]), Path)
