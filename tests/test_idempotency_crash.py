"""An `Idempotency-Key` held by a request whose server died: the retry after the restart runs at once.

The claim is written as a server killed mid-request (kill -9) leaves it: `claimed`, its lease still
running, its owner a process on this host that no longer runs. The retry through the real API must
run the write (200, once), not answer 409 until the lease lapses. A claim whose owner still runs
keeps answering 409.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.idempotency import LEASE_S, fingerprint, owner, record_id
from api.models import ObservationBatch

ENTITY = {"kind": "Project", "name": "Churn model"}
BODY = {"observations": [{"entity": ENTITY, "text": "AUC 0.81 after the crash"}], "create_missing": True}


def a_process() -> subprocess.Popen:
    """A process of our own, standing in for a kgmem server that holds a claim."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def leave_a_claim(gateway, key_id: str, path: str, idempotency_key: str, claim_owner: dict) -> None:
    """The record a server writes when a request with `idempotency_key` starts, and leaves if it dies."""
    now = datetime.now(UTC)
    gateway.write(
        """
        CREATE (:IdempotencyRecord {id: $id, token: $token, state: 'claimed', fingerprint: $fingerprint,
                                    created_at: $now, expires_at: $expires_at, lease_until: $lease_until,
                                    owner_host: $owner_host, owner_pid: $owner_pid, owner_started: $owner_started})
        """,
        id=record_id(key_id, "POST", path, idempotency_key), token=uuid.uuid4().hex,
        fingerprint=fingerprint(ObservationBatch.model_validate(BODY)),  # the body as the route reads it
        now=now, expires_at=now + timedelta(days=1), lease_until=now + timedelta(seconds=LEASE_S), **claim_owner)


def observations(gateway, space: str) -> int:
    return gateway.rows("MATCH (o:Observation {space: $space}) RETURN count(o) AS n", space=space)[0]["n"]


@pytest.fixture
def writer(live_api, space):
    """An HTTP client with a write key of its own for the test's space, and that key's id."""
    token = live_api.token([space])
    with live_api.http(token) as http:
        yield http, live_api.key_ids[-1]


@pytest.mark.timeout(120)
def test_a_claim_left_by_a_killed_server_does_not_hold_the_key(writer, space, gateway):
    http, key_id = writer
    path = f"/v1/spaces/{space}/observations"
    key = str(uuid.uuid4())
    dead = a_process()
    dead_owner = owner(dead.pid)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=30)
    leave_a_claim(gateway, key_id, path, key, dead_owner)

    retried = http.post(path, json=BODY, headers={"Idempotency-Key": key})
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert observations(gateway, space) == 1

    # From now on the key is the retry's: replayed, and nothing written twice.
    again = http.post(path, json=BODY, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == retried.json()
    assert observations(gateway, space) == 1


@pytest.mark.timeout(120)
def test_a_claim_whose_owner_still_runs_keeps_the_key(writer, space, gateway):
    http, key_id = writer
    path = f"/v1/spaces/{space}/observations"
    key = str(uuid.uuid4())
    alive = a_process()
    try:
        leave_a_claim(gateway, key_id, path, key, owner(alive.pid))
        answer = http.post(path, json=BODY, headers={"Idempotency-Key": key})
        assert answer.status_code == 409, answer.text
        assert answer.json()["type"] == "urn:kgmem:problem:idempotency-key-in-use"
        assert answer.headers["retry-after"] == "1"
        assert observations(gateway, space) == 0
    finally:
        alive.kill()
        alive.wait(timeout=30)


@pytest.mark.timeout(120)
def test_a_claim_from_another_host_keeps_its_lease(writer, space, gateway):
    """Whether a process on another host runs cannot be seen from here: its claim lapses only with its lease."""
    http, key_id = writer
    path = f"/v1/spaces/{space}/observations"
    key = str(uuid.uuid4())
    elsewhere = {"owner_host": "another-host/boot/pid:[1]", "owner_pid": 999_999, "owner_started": "1"}
    leave_a_claim(gateway, key_id, path, key, elsewhere)
    answer = http.post(path, json=BODY, headers={"Idempotency-Key": key})
    assert answer.status_code == 409, answer.text
    assert observations(gateway, space) == 0


@pytest.mark.timeout(120)
def test_a_pid_reused_by_a_later_process_does_not_keep_the_key(writer, space, gateway):
    """The claim names the owner's start time too: the same pid, started at another time, is not the owner."""
    http, key_id = writer
    path = f"/v1/spaces/{space}/observations"
    key = str(uuid.uuid4())
    alive = a_process()
    try:
        earlier = {**owner(alive.pid), "owner_started": "1"}  # this pid, held by a process started at boot
        leave_a_claim(gateway, key_id, path, key, earlier)
        answer = http.post(path, json=BODY, headers={"Idempotency-Key": key})
        assert answer.status_code == 200, answer.text
        assert observations(gateway, space) == 1
    finally:
        alive.kill()
        alive.wait(timeout=30)
