"""The managed Neo4j's data directory is private: its store holds every tenant, and auth.ini the password hash."""

from __future__ import annotations

import logging
import os
import stat

from graph import Settings
from graph.neo4j_server import LocalNeo4j


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_installing_neo4j_keeps_its_data_out_of_other_users_reach(tmp_path):
    previous = os.umask(0o022)  # the common umask, under which new files are 0644 and directories 0755
    try:
        local = LocalNeo4j(Settings(home=tmp_path / "home"), show_progress=False)
        local.install()
    finally:
        os.umask(previous)
    assert mode(tmp_path / "home") == 0o700
    assert mode(local.root) == 0o700
    assert mode(local.password_file) == 0o600
    assert (local.data_dir / "dbms" / "auth.ini").exists()  # behind the two directories above


def test_an_open_data_directory_from_before_is_closed_with_a_warning(tmp_path, caplog):
    home = tmp_path / "home"
    (home / "neo4j").mkdir(parents=True)
    os.chmod(home, 0o755)
    os.chmod(home / "neo4j", 0o755)
    with caplog.at_level(logging.WARNING, logger="graph.home"):
        LocalNeo4j(Settings(home=home), show_progress=False).install()
    assert mode(home) == 0o700
    assert mode(home / "neo4j") == 0o700
    warnings = [record.getMessage() for record in caplog.records]
    assert any(str(home) in warning and "made it private" in warning for warning in warnings), warnings
