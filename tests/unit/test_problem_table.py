"""The REST API's status for each of kgmem's errors, as api/problems.py documents it."""

from __future__ import annotations

import inspect
import re

import pytest

from api import problems
from graph import errors

ERROR_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.KgmemError)]


def documented_rows() -> dict[str, tuple[int, str, bool]]:
    """`Class` -> (status, slug, retry) from the table in the module's docstring."""
    rows = {}
    for line in problems.__doc__.splitlines():
        match = re.match(r"\| (?:other )?`(\w+)`[^|]*\| (\d{3})( ⏲)?\s*\| ([\w-]+)", line)
        if match and hasattr(errors, match.group(1)):
            rows[match.group(1)] = (int(match.group(2)), match.group(4), bool(match.group(3)))
    return rows


def test_every_error_class_has_a_documented_status():
    documented = documented_rows()
    for cls in ERROR_CLASSES:
        nearest = next(c.__name__ for c in cls.__mro__ if c.__name__ in documented)
        assert nearest, cls


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_answers_as_documented(cls):
    documented = documented_rows()
    status, slug, retry = documented[next(c.__name__ for c in cls.__mro__ if c.__name__ in documented)]
    problem = problems.kgmem_problem(cls("what happened"))
    assert (problem.status, problem.type) == (status, f"{problems.TYPE_PREFIX}{slug}")
    assert ("Retry-After" in problem.headers) == retry
    assert problem.detail == "what happened"


def test_unavailable_dependencies_say_when_to_retry():
    problem = problems.kgmem_problem(errors.Neo4jUnavailable("Neo4j cannot be reached"), retry_after_s=7)
    assert problem.status == 503 and problem.headers == {"Retry-After": "7"}


def test_only_unexpected_errors_log_a_traceback():
    assert problems.classify(errors.NotFound("no such entity"))[1] == "none"
    assert problems.classify(errors.Neo4jUnavailable("down"))[1] == "warning"
    problem, level = problems.classify(RuntimeError("a bug"))
    assert (problem.status, level) == (500, "error") and "bug" not in (problem.detail or "")
