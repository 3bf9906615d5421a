"""kgmem's data directory is its owner's alone: created 0700, and tightened with a warning when it was not."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from graph.home import ensure_private, ensure_private_data
from graph.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The common umask, which gives new directories 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_home_is_created_private(tmp_path, open_umask):
    home = tmp_path / "a" / "kgmem"
    ensure_private_data(Settings(home=home))
    assert mode(home) == 0o700


def test_an_open_home_is_made_private_with_a_warning(tmp_path, caplog):
    home = tmp_path / "kgmem"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    with caplog.at_level(logging.WARNING, logger="graph.home"):
        ensure_private_data(Settings(home=home))
    assert mode(home) == 0o700
    [warning] = caplog.records
    assert str(home) in warning.getMessage() and "made it private" in warning.getMessage()


def test_a_private_home_is_left_alone_without_a_word(tmp_path, caplog):
    home = tmp_path / "kgmem"
    home.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING, logger="graph.home"):
        ensure_private(home)
    assert mode(home) == 0o700
    assert caplog.records == []


def test_an_embedded_chroma_outside_the_home_is_made_private_too(tmp_path):
    chroma = tmp_path / "chroma"
    chroma.mkdir()
    os.chmod(chroma, 0o755)
    ensure_private_data(Settings(home=tmp_path / "kgmem", chroma_path=chroma))
    assert mode(chroma) == 0o700


def test_a_chroma_server_leaves_the_chroma_path_alone(tmp_path):
    unused = tmp_path / "chroma"
    ensure_private_data(Settings(home=tmp_path / "kgmem", chroma_path=unused, chroma_host="chroma.internal"))
    assert not unused.exists()
