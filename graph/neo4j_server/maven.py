"""Find `mvn`, or fetch Apache Maven itself from Maven Central when it is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from graph.errors import DownloadError
from graph.neo4j_server.download import download, unpack_tarball
from graph.neo4j_server.java import find_java

MAVEN_VERSION = "3.9.9"
MAVEN_URL = (
    "https://repo1.maven.org/maven2/org/apache/maven/apache-maven/"
    f"{MAVEN_VERSION}/apache-maven-{MAVEN_VERSION}-bin.tar.gz"
)


def maven_executable(cache_dir: Path, *, show_progress: bool = True) -> Path:
    on_path = shutil.which("mvn")
    if on_path:
        return Path(on_path)
    home = cache_dir / "maven" / f"apache-maven-{MAVEN_VERSION}"
    executable = home / "bin" / "mvn"
    if executable.exists():
        return executable
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
        tarball = Path(tmp) / f"apache-maven-{MAVEN_VERSION}-bin.tar.gz"
        download(MAVEN_URL, tarball, require_checksum=True, show_progress=show_progress)
        unpacked = unpack_tarball(tarball, Path(tmp) / "unpacked")
        shutil.move(str(unpacked), home)
    executable.chmod(0o755)
    return executable


def run_maven(executable: Path, arguments: list[str], *, cwd: Path) -> None:
    # -B: no colours or prompts; -C: fail on a checksum mismatch instead of warning.
    command = [str(executable), "-B", "-C", "-q", *arguments]
    env = {**os.environ, "JAVA_HOME": str(find_java().home)}
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1800, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(f"mvn failed to run: {exc}") from exc
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if "ERROR" in line] or lines[-1:]
        reason = errors[0].replace("[ERROR]", "").strip() if errors else f"exit code {result.returncode}"
        raise DownloadError(f"mvn: {reason[:300]}")
