"""kgmem's data directory is its owner's alone.

`$KGMEM_HOME` holds every tenant's data: Neo4j's store, the API keys' hashes, Neo4j's
`auth.ini` and password file, Chroma's `chroma.sqlite3`. Files inside get the process's
umask (often 0644), so the directory itself is what keeps other users out: it is created
0700, and one found open to others (made by an older kgmem, or by hand) is closed at
start-up with a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from graph.settings import Settings

log = logging.getLogger(__name__)

PRIVATE = 0o700


def private_directories(settings: Settings) -> list[Path]:
    """The directories that hold data: the home, and the embedded Chroma's when it is configured elsewhere."""
    home = settings.home.expanduser()
    chroma = settings.chroma_dir.expanduser()
    embedded_elsewhere = settings.chroma_host is None and not chroma.is_relative_to(home)
    return [home, chroma] if embedded_elsewhere else [home]


def ensure_private(directory: Path) -> Path:
    """Create `directory` (and missing parents) with mode 0700, or take group and other access away from one
    that exists, with a warning. A directory kgmem may not change is left as it is, with a warning."""
    if not directory.exists():
        directory.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
        os.chmod(directory, PRIVATE)  # mkdir's mode passes through the umask; set it exactly
        return directory
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        try:
            os.chmod(directory, mode & ~0o077)
        except OSError as exc:
            log.warning("kgmem's data directory %s is open to other users (mode %03o) and could not be made "
                        "private (%s); run: chmod 700 %s", directory, mode, exc.strerror, directory)
        else:
            log.warning("kgmem's data directory %s was open to other users (mode %03o); made it private (%03o): "
                        "it holds every space's data and the API keys' hashes", directory, mode, mode & ~0o077)
    return directory


def ensure_private_data(settings: Settings) -> None:
    """Create the home private, and make every data directory of `settings` that exists private
    (see `ensure_private`)."""
    home, *others = private_directories(settings)
    ensure_private(home)
    for directory in others:
        if directory.exists():
            ensure_private(directory)
