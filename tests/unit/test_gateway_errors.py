"""The gateway speaks kgmem's errors: each driver failure becomes the error a caller can act on."""

from __future__ import annotations

import pytest
from neo4j import exceptions as neo4j_errors

from graph import errors
from graph.gateway import current_time_limit, time_limit, translate


def neo4j_error(code: str, message: str = "it went wrong") -> neo4j_errors.Neo4jError:
    return neo4j_errors.Neo4jError._hydrate_neo4j(code=code, message=message)


@pytest.mark.parametrize(("failure", "expected"), [
    (neo4j_errors.ServiceUnavailable("connection refused"), errors.Neo4jUnavailable),
    (neo4j_errors.SessionExpired("leader switched"), errors.Neo4jUnavailable),
    (neo4j_errors.ConnectionAcquisitionTimeoutError("pool exhausted"), errors.Neo4jUnavailable),
    (neo4j_error("Neo.TransientError.Transaction.DeadlockDetected"), errors.Neo4jUnavailable),
    (neo4j_error("Neo.TransientError.General.MemoryPoolOutOfMemoryError"), errors.Neo4jUnavailable),
    (neo4j_error("Neo.DatabaseError.General.UnknownError"), errors.Neo4jUnavailable),
    (neo4j_error("Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration"), errors.QueryTimeout),
    (neo4j_error("Neo.ClientError.Schema.ConstraintValidationFailed"), errors.Conflict),
    (neo4j_error("Neo.ClientError.Statement.TypeError"), errors.InvalidInput),
    (neo4j_error("Neo.ClientError.Statement.ArgumentError"), errors.InvalidInput),
    (neo4j_error("Neo.ClientError.Security.Unauthorized"), errors.ConfigurationError),
    (neo4j_error("Neo.ClientError.Security.AuthenticationRateLimit"), errors.ConfigurationError),
])
def test_driver_failures_become_kgmem_errors(failure, expected):
    translated = translate(failure)
    assert type(translated) is expected
    assert str(translated)  # a message a person can read


def test_neo4j_being_down_is_a_kind_of_unavailable_that_says_retry():
    translated = translate(neo4j_errors.ServiceUnavailable("connection refused"))
    assert isinstance(translated, errors.Unavailable) and translated.dependency == "Neo4j"
    assert "retry later" in str(translated)


def test_a_bug_in_a_query_is_left_as_it_is():
    assert translate(neo4j_error("Neo.ClientError.Statement.SyntaxError")) is None
    assert translate(ValueError("not a driver error")) is None


def test_an_overflow_counts_only_when_the_driver_raised_it():
    assert translate(OverflowError("ours")) is None


def test_time_limits_nest_and_unwind():
    assert current_time_limit() is None
    with time_limit(10):
        assert current_time_limit() == 10
        with time_limit(None):
            assert current_time_limit() is None
        assert current_time_limit() == 10
    assert current_time_limit() is None


def test_once_neo4j_is_found_down_calls_fail_at_once_until_it_answers():
    """A real driver to a port nobody listens on: the first call fails after the driver's (short) retries,
    the next ones at once. (Recovery, once a stopped Neo4j is back, is tests/test_faults.py's.)"""
    import socket
    import time

    from graph.gateway import Gateway, open_driver

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = Gateway(lambda: open_driver(f"bolt://127.0.0.1:{port}", "neo4j", "secret", retry_s=0.5,
                                          connect_timeout_s=1), cooldown_s=60)
    with pytest.raises(errors.Neo4jUnavailable):
        gateway.rows("RETURN 1")
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(errors.Neo4jUnavailable, match="has been unreachable"):
            gateway.rows("RETURN 1")
    assert time.monotonic() - started < 0.5  # no retries, no connection attempts while it is known to be down
    gateway.close()
