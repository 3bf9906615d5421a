"""`kgmem cypher` and `kgmem report`, run as an analyst runs them: the real executable."""

import csv
import io
import json
import os
import re
import subprocess

import pytest

from cli_helpers import KGMEM, assert_one_error_line  # noqa: E402

# Two projects, one lesson applying to one of them.
SEED = """
UNWIND [['Project', 'Churn'], ['Project', 'Forecast'], ['Lesson', 'Check for leakage']] AS row
CREATE (e:Entity {id: randomUUID(), space: $space, kind: row[0], entity_type: row[0], name: row[1],
                  name_key: toLower(row[1]), created_at: datetime(), updated_at: datetime()})
SET e:$(row[0])
WITH collect(e) AS created
MATCH (l:Lesson {space: $space}), (p:Project {space: $space, name: 'Churn'})
CREATE (l)-[:APPLIES_TO {id: randomUUID(), space: $space, valid_from: datetime(), recorded_at: datetime()}]->(p)
"""


def kgmem(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    # The environment carries the test session's KGMEM_HOME, so the CLI finds its managed Neo4j.
    return subprocess.run(
        [KGMEM, *args], capture_output=True, text=True, input=stdin, env=os.environ.copy(), timeout=180
    )


@pytest.fixture
def seeded(managed_neo4j, gateway, space):
    gateway.write(SEED, space=space)
    return space


def test_a_write_is_refused_in_one_line(managed_neo4j, gateway):
    before = gateway.rows("MATCH (n) RETURN count(n) AS n")[0]["n"]
    line = assert_one_error_line(kgmem("cypher", "CREATE (n) RETURN n"))
    assert line == "error: refused: kgmem cypher only runs read-only queries, and this one reads and writes the graph"
    assert gateway.rows("MATCH (n) RETURN count(n) AS n")[0]["n"] == before


def test_a_count_is_printed(managed_neo4j, gateway, seeded):
    expected = gateway.rows("MATCH (n) RETURN count(n) AS n")[0]["n"]
    result = kgmem("cypher", "MATCH (n) RETURN count(n) AS n")
    assert result.returncode == 0, result.stderr
    assert re.findall(r"│\s*(\d+)\s*│", result.stdout) == [str(expected)]
    assert expected >= 3


def test_json_output_with_a_parameter(seeded):
    result = kgmem("cypher", "MATCH (p:Project {space: $space}) RETURN p.name AS name ORDER BY name",
                   "--param", f"space={seeded}", "--format", "json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["columns"] == ["name"]
    assert payload["rows"] == [{"name": "Churn"}, {"name": "Forecast"}]
    assert payload["truncated"] is False


def test_csv_output_and_json_parameter_values(seeded):
    result = kgmem(
        "cypher", "MATCH (p:Project {space: $space}) WHERE p.name IN $names "
        "RETURN p.name AS name, $limit + 1 AS next, $flag AS flag, $literal AS literal",
        "-p", f"space={seeded}", "-p", 'names=["Forecast", "Nowhere"]', "-p", "limit=41", "-p", "flag=true",
        "-p", "literal=007", "--format", "csv",
    )
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["name", "next", "flag", "literal"], ["Forecast", "42", "true", "007"],
    ]


def test_the_row_cap_is_reported(managed_neo4j):
    result = kgmem("cypher", "UNWIND range(1, 50) AS i RETURN i", "--limit", "5", "--format", "json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["rows"] == [{"i": i} for i in range(1, 6)]
    assert payload["truncated"] is True
    assert "stopped at 5 rows" in result.stderr


def test_a_query_from_standard_input(seeded):
    result = kgmem("cypher", "-", "-p", f"space={seeded}", "-f", "json",
                   stdin="MATCH (l:Lesson {space: $space})\nRETURN l.name AS lesson")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == [{"lesson": "Check for leakage"}]


def test_neo4j_messages_are_printed_verbatim(managed_neo4j):
    # Neo4j echoes this query in its message; `[/x]` would be rich markup if it were read as such.
    line = assert_one_error_line(kgmem("cypher", "USE system RETURN '[/x]' AS y"))
    assert line.startswith("error: invalid query: ")
    assert "RETURN '[/x]' AS y" in line


def test_a_timeout_is_one_line(managed_neo4j):
    line = assert_one_error_line(kgmem(
        "cypher", "UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b RETURN count(*) AS n", "--timeout", "1",
    ))
    assert line == "error: the query ran longer than its 1 s time limit and was stopped"


def test_report_list_names_them_all():
    result = kgmem("report", "--list")
    assert result.returncode == 0, result.stderr
    for name in ("agent-success", "lessons-per-project", "model-lineage", "experiment-leaderboard",
                 "delegation-throughput", "incident-lessons", "on-time-delivery", "success-by-agent",
                 "model-vs-benchmark", "lessons-reused"):
        assert name in result.stdout


def test_report_list_as_json_carries_the_cypher():
    catalogue = json.loads(kgmem("report", "--list", "--format", "json").stdout)
    assert len(catalogue) == 10
    leaderboard = next(item for item in catalogue if item["name"] == "experiment-leaderboard")
    assert "e['metric_' + $metric]" in leaderboard["cypher"]
    assert [p["name"] for p in leaderboard["parameters"]] == ["space", "metric", "higher_is_better", "limit"]


def test_report_lessons_per_project_as_json(seeded):
    result = kgmem("report", "lessons-per-project", "--space", seeded, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == [
        {"project": "Churn", "status": None, "lessons": 1, "applies_to": 1, "learned_from_work": 0},
        {"project": "Forecast", "status": None, "lessons": 0, "applies_to": 0, "learned_from_work": 0},
    ]


def test_report_parameters_from_the_command_line(seeded):
    result = kgmem("report", "lessons-per-project", "--space", seeded, "--param", "limit=1", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["project", "status", "lessons", "applies_to", "learned_from_work"], ["Churn", "", "1", "1", "0"],
    ]


def test_report_without_a_space_is_one_line():
    line = assert_one_error_line(kgmem("report", "agent-success"))
    assert line == "error: report agent-success needs the parameter space"


def test_an_unknown_report_is_one_line():
    line = assert_one_error_line(kgmem("report", "agent-sucess", "--space", "x"))
    assert "no report named 'agent-sucess'" in line
