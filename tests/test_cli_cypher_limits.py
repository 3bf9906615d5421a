"""`kgmem cypher`'s limits as an analyst meets them: --timeout covers planning, and a cut answer says why."""

import os
import subprocess
import time

from cli_helpers import KGMEM, assert_one_error_line
from cypher_helpers import doubled_string, slow_to_plan


def kgmem(*args: str) -> subprocess.CompletedProcess:
    # The environment carries the test session's KGMEM_HOME, so the CLI finds its managed Neo4j.
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=180)


def test_the_timeout_covers_planning(managed_neo4j):
    """60 patterns keep Neo4j's planner busy for half a minute; --timeout 2 ends it in about 2 s."""
    started = time.monotonic()
    line = assert_one_error_line(kgmem("cypher", slow_to_plan(), "--timeout", "2"))
    assert line.startswith("error: Neo4j was still planning the query at its 2 s time limit")
    assert time.monotonic() - started < 30  # the command's own start-up (about 10 s) included


def test_an_answer_cut_at_its_size_cap_says_so(managed_neo4j):
    result = kgmem("cypher", doubled_string(20, rows=40), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert "where the answer reached its size cap (16 MiB)" in result.stderr
    assert len(result.stdout.splitlines()) < 41
