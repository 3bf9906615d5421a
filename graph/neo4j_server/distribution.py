"""Get a Neo4j Community server onto this machine.

Resolution order, first success wins:

1. `KGMEM_NEO4J_HOME`: an unpacked distribution you already have;
2. a distribution kgmem installed before (in the cache directory);
3. `KGMEM_NEO4J_DIST`: a tarball path or URL;
4. the standalone tarball from Maven Central through `mvn dependency:copy`;
5. the same artifact over HTTPS, checked against the checksum Maven publishes;
6. the server assembled from its Maven Central jars (`org.neo4j:neo4j`,
   `org.neo4j.app:neo4j-server`, the Browser) by `mvn` with a small launcher pom;
   when `mvn` is not installed, Apache Maven itself is fetched from Maven Central.

Every route ends in the same shape: a directory whose `lib/` holds the jars of
a real Neo4j server, started through `org.neo4j.server.CommunityEntryPoint`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock

from graph.errors import ChecksumMismatch, DownloadError
from graph.neo4j_server.download import download, sibling_checksum, unpack_tarball, verify_checksum
from graph.neo4j_server.maven import maven_executable, run_maven
from graph.settings import Settings

log = logging.getLogger(__name__)

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
STANDALONE_GROUP = "org.neo4j.assembly"
STANDALONE_ARTIFACT = "neo4j-community-standalone"
BROWSER_VERSION = "5.24.0"  # the newest 5.x Neo4j Browser on Maven Central
MARKER = ".kgmem-dist.json"

_KERNEL_JAR = re.compile(r"^neo4j-kernel-(\d+\.\d+\.\d+)\.jar$")


@dataclass(frozen=True)
class Distribution:
    home: Path
    version: str
    source: str

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def classpath(self) -> str:
        return f"{self.lib_dir}/*"


def detect_version(home: Path) -> str | None:
    """The server version, read off the kernel jar's name in `lib/`."""
    lib = home / "lib"
    if not lib.is_dir():
        return None
    for jar in lib.iterdir():
        match = _KERNEL_JAR.match(jar.name)
        if match:
            return match.group(1)
    return None


def standalone_url(version: str) -> str:
    group_path = STANDALONE_GROUP.replace(".", "/")
    name = f"{STANDALONE_ARTIFACT}-{version}-unix.tar.gz"
    return f"{MAVEN_CENTRAL}/{group_path}/{STANDALONE_ARTIFACT}/{version}/{name}"


def launcher_pom(version: str) -> str:
    """A pom whose runtime dependencies are exactly the Community server's jars."""
    deps = [
        ("org.neo4j", "neo4j", version),
        ("org.neo4j.app", "neo4j-server", version),
        ("org.neo4j.client", "neo4j-browser", BROWSER_VERSION),
    ]
    dependency_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kgmem</groupId>
  <artifactId>kgmem-neo4j-launcher</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependency_xml}
  </dependencies>
</project>
"""


class DistributionResolver:
    """Finds or installs the Neo4j distribution the settings ask for."""

    def __init__(self, settings: Settings, *, show_progress: bool = True) -> None:
        self.settings = settings
        self.version = settings.neo4j_version
        self.show_progress = show_progress
        self.install_dir = settings.cache_dir / "neo4j" / f"neo4j-community-{self.version}"

    # -- public ---------------------------------------------------------------
    def installed(self) -> Distribution | None:
        """The distribution to use if one is already here; never downloads."""
        if self.settings.neo4j_home:
            return self._from_home(self.settings.neo4j_home)
        marker = self.install_dir / MARKER
        if marker.exists() and detect_version(self.install_dir):
            source = json.loads(marker.read_text()).get("source", "cache")
            return Distribution(self.install_dir, detect_version(self.install_dir) or self.version, source)
        return None

    def resolve(self) -> Distribution:
        """The installed distribution, installing it first if needed."""
        existing = self.installed()
        if existing:
            return existing
        self.install_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.install_dir) + ".lock", timeout=1800):
            existing = self.installed()  # another process may have installed it meanwhile
            if existing:
                return existing
            return self._install()

    # -- routes -----------------------------------------------------------------
    def _from_home(self, home: Path) -> Distribution:
        home = home.expanduser()
        version = detect_version(home)
        if not version:
            raise DownloadError(
                f"KGMEM_NEO4J_HOME={home} is not a Neo4j distribution (no lib/neo4j-kernel-*.jar)"
            )
        return Distribution(home, version, "KGMEM_NEO4J_HOME")

    def _install(self) -> Distribution:
        if self.settings.neo4j_dist:
            return self._install_from_dist()  # asked for by name: its failure is final
        routes = []
        if shutil.which("mvn"):
            routes.append(("mvn dependency:copy of the standalone tarball", self._install_with_mvn_copy))
        routes.append(("HTTPS download of the standalone tarball", self._install_over_https))
        routes.append(("server assembled from Maven Central jars", self._install_with_launcher))
        failures: list[str] = []
        for name, route in routes:
            try:
                log.info("neo4j: trying %s", name)
                return route()
            except ChecksumMismatch:
                raise  # a corrupt download is never papered over by another route
            except DownloadError as exc:
                failures.append(f"{name}: {exc}")
                log.info("neo4j: %s failed: %s", name, exc)
        raise DownloadError(f"could not get Neo4j {self.version}: " + "; ".join(failures))

    def _install_from_dist(self) -> Distribution:
        dist = self.settings.neo4j_dist or ""
        with tempfile.TemporaryDirectory() as tmp:
            if urlparse(dist).scheme in ("http", "https"):
                tarball = Path(tmp) / Path(urlparse(dist).path).name
                download(dist, tarball, require_checksum=False, show_progress=self.show_progress)
            else:
                tarball = Path(dist).expanduser()
                if not tarball.is_file():
                    raise DownloadError(f"KGMEM_NEO4J_DIST={dist} is neither a file nor an http(s) URL")
                expected = sibling_checksum(tarball)
                if expected:
                    verify_checksum(tarball, *expected)
            return self._unpack(tarball, "KGMEM_NEO4J_DIST")

    def _install_with_mvn_copy(self) -> Distribution:
        with tempfile.TemporaryDirectory() as tmp:
            artifact = f"{STANDALONE_GROUP}:{STANDALONE_ARTIFACT}:{self.version}:tar.gz:unix"
            run_maven(
                maven_executable(self.settings.cache_dir, show_progress=self.show_progress),
                ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={tmp}"],
                cwd=Path(tmp),
            )
            tarballs = list(Path(tmp).glob("*.tar.gz"))
            if not tarballs:
                raise DownloadError("mvn dependency:copy produced no tarball")
            return self._unpack(tarballs[0], "maven standalone tarball")

    def _install_over_https(self) -> Distribution:
        url = standalone_url(self.version)
        with tempfile.TemporaryDirectory() as tmp:
            tarball = Path(tmp) / Path(urlparse(url).path).name
            download(url, tarball, require_checksum=True, show_progress=self.show_progress)
            return self._unpack(tarball, "HTTPS from Maven Central")

    def _install_with_launcher(self) -> Distribution:
        mvn = maven_executable(self.settings.cache_dir, show_progress=self.show_progress)
        with tempfile.TemporaryDirectory(prefix="launcher-", dir=self.install_dir.parent) as tmp:
            staging = Path(tmp) / "neo4j"
            staging.mkdir()
            (staging / "pom.xml").write_text(launcher_pom(self.version))
            self._status(f"Assembling Neo4j {self.version} from its Maven Central jars (about 125 MB)…")
            run_maven(
                mvn,
                ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'lib'}"],
                cwd=staging,
            )
            if detect_version(staging) != self.version:
                raise DownloadError(f"the assembled jars do not contain neo4j-kernel {self.version}")
            return self._activate(staging, "maven launcher")

    # -- helpers -------------------------------------------------------------------
    def _unpack(self, tarball: Path, source: str) -> Distribution:
        with tempfile.TemporaryDirectory(prefix="unpack-", dir=self.install_dir.parent) as tmp:
            home = unpack_tarball(tarball, Path(tmp))
            if not detect_version(home):
                raise DownloadError(f"{tarball.name} does not contain a Neo4j distribution (no lib/neo4j-kernel-*.jar)")
            return self._activate(home, source)

    def _activate(self, home: Path, source: str) -> Distribution:
        """Move a complete distribution into place; a half-finished one is never visible."""
        version = detect_version(home) or self.version
        (home / MARKER).write_text(json.dumps({"version": version, "source": source}))
        if self.install_dir.exists():
            shutil.rmtree(self.install_dir)
        shutil.move(str(home), self.install_dir)
        self._status(f"Neo4j {version} installed in {self.install_dir} ({source})")
        return Distribution(self.install_dir, version, source)

    def _status(self, message: str) -> None:
        log.info(message)
        if self.show_progress:
            from rich.console import Console

            Console(stderr=True, soft_wrap=True).print(message)
