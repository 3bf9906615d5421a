"""What the CLI tests share: the installed `kgmem` executable and the one-line error check."""

import subprocess
import sys
from pathlib import Path

KGMEM = str(Path(sys.executable).parent / "kgmem")


def assert_one_error_line(result: subprocess.CompletedProcess) -> str:
    """A failed command prints exactly one `error:` line on stderr, nothing on stdout, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]
