"""Getting Neo4j: an existing home, a tarball, checksums, and the Maven launcher."""

import hashlib
import io
import tarfile

import pytest

from graph.errors import ChecksumMismatch, DownloadError
from graph.neo4j_server.distribution import DistributionResolver, detect_version, launcher_pom, standalone_url
from graph.neo4j_server.download import parse_checksum_file, verify_checksum
from graph.settings import Settings


def make_tarball(path, version="5.26.30", top=None):
    """A tarball shaped like Neo4j's: <top>/lib/neo4j-kernel-<version>.jar."""
    top = top or f"neo4j-community-{version}"
    with tarfile.open(path, "w:gz") as archive:
        for name in (f"{top}/lib/neo4j-kernel-{version}.jar", f"{top}/conf/neo4j.conf"):
            data = b"jar" if name.endswith(".jar") else b""
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def resolver(tmp_path, **overrides):
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache", **overrides)
    return DistributionResolver(settings, show_progress=False)


def test_version_is_read_off_the_kernel_jar(tmp_path):
    (tmp_path / "lib").mkdir()
    assert detect_version(tmp_path) is None
    (tmp_path / "lib" / "neo4j-kernel-5.26.30.jar").touch()
    assert detect_version(tmp_path) == "5.26.30"


def test_the_standalone_artifact_is_the_unix_tarball_on_maven_central():
    url = standalone_url("5.26.30")
    assert url == (
        "https://repo1.maven.org/maven2/org/neo4j/assembly/neo4j-community-standalone/"
        "5.26.30/neo4j-community-standalone-5.26.30-unix.tar.gz"
    )


def test_launcher_pom_pulls_the_community_server_jars():
    pom = launcher_pom("5.26.30")
    assert "<artifactId>neo4j</artifactId><version>5.26.30</version>" in pom
    assert "<artifactId>neo4j-server</artifactId><version>5.26.30</version>" in pom
    assert "neo4j-browser" in pom


def test_neo4j_home_must_be_a_distribution(tmp_path):
    with pytest.raises(DownloadError, match="not a Neo4j distribution"):
        resolver(tmp_path, neo4j_home=tmp_path).resolve()


def test_neo4j_home_is_used_as_is(tmp_path):
    (tmp_path / "dist" / "lib").mkdir(parents=True)
    (tmp_path / "dist" / "lib" / "neo4j-kernel-5.26.12.jar").touch()
    distribution = resolver(tmp_path, neo4j_home=tmp_path / "dist").resolve()
    assert (distribution.home, distribution.version, distribution.source) == (tmp_path / "dist", "5.26.12", "KGMEM_NEO4J_HOME")


def test_a_tarball_is_unpacked_once_into_the_cache(tmp_path):
    tarball = make_tarball(tmp_path / "neo4j.tar.gz")
    first = resolver(tmp_path, neo4j_dist=str(tarball)).resolve()
    assert first.source == "KGMEM_NEO4J_DIST"
    assert first.home.parent == tmp_path / "cache" / "neo4j"
    assert (first.lib_dir / "neo4j-kernel-5.26.30.jar").exists()
    tarball.unlink()  # the second resolve must not need it
    again = resolver(tmp_path, neo4j_dist=str(tarball)).resolve()
    assert again == first


def test_a_tarball_that_disagrees_with_its_checksum_is_refused(tmp_path):
    tarball = make_tarball(tmp_path / "neo4j.tar.gz")
    (tmp_path / "neo4j.tar.gz.sha256").write_text("0" * 64 + "  neo4j.tar.gz\n")
    with pytest.raises(ChecksumMismatch, match="corrupt"):
        resolver(tmp_path, neo4j_dist=str(tarball)).resolve()
    assert resolver(tmp_path).installed() is None


def test_a_tarball_matching_its_checksum_is_accepted(tmp_path):
    tarball = make_tarball(tmp_path / "neo4j.tar.gz")
    digest = hashlib.sha512(tarball.read_bytes()).hexdigest()
    (tmp_path / "neo4j.tar.gz.sha512").write_text(digest)
    assert resolver(tmp_path, neo4j_dist=str(tarball)).resolve().version == "5.26.30"


def test_a_truncated_tarball_gives_a_clear_error(tmp_path):
    tarball = make_tarball(tmp_path / "neo4j.tar.gz")
    tarball.write_bytes(tarball.read_bytes()[:20])
    with pytest.raises(DownloadError, match="not a readable tar.gz"):
        resolver(tmp_path, neo4j_dist=str(tarball)).resolve()


def test_a_tarball_without_neo4j_is_refused(tmp_path):
    tarball = make_tarball(tmp_path / "other.tar.gz", top="something-else", version="x")
    with pytest.raises(DownloadError, match="does not contain a Neo4j distribution"):
        resolver(tmp_path, neo4j_dist=str(tarball)).resolve()


def test_checksum_files_in_both_common_formats():
    assert parse_checksum_file("d41d8cd98f00b204e9800998ecf8427e") == "d41d8cd98f00b204e9800998ecf8427e"
    assert parse_checksum_file("d41d8cd98f00b204e9800998ecf8427e  file.tar.gz\n") == "d41d8cd98f00b204e9800998ecf8427e"
    assert parse_checksum_file("<html>not found</html>") is None


def test_verify_checksum_passes_and_fails(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"neo4j")
    verify_checksum(path, "sha1", hashlib.sha1(b"neo4j").hexdigest())
    with pytest.raises(ChecksumMismatch):
        verify_checksum(path, "sha1", hashlib.sha1(b"other").hexdigest())
