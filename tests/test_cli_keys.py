"""`kgmem keys create|list|revoke`, run as an operator runs them: the real executable."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from api.auth import KeyStore, parse_token

from cli_helpers import KGMEM, assert_one_error_line  # noqa: E402
TOKEN = re.compile(r"kgm_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43,}")


def kgmem(*args: str) -> subprocess.CompletedProcess:
    # The environment carries the test session's KGMEM_HOME, so the CLI finds its managed Neo4j.
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=180)


@pytest.fixture
def created(managed_neo4j, gateway):
    """key_ids the test created through the CLI; deleted afterwards (keys live in no space)."""
    ids: list[str] = []
    yield ids
    gateway.write("MATCH (k:ApiKey) WHERE k.key_id IN $ids DETACH DELETE k", ids=ids)


def test_create_list_revoke(created, gateway):
    result = kgmem("keys", "create", "--name", "ci job", "--scope", "read", "--scope", "write",
                   "--space", "acme", "--space", "beta")
    assert result.returncode == 0, result.stderr
    tokens = TOKEN.findall(result.stdout + result.stderr)
    assert len(tokens) == 1, result.stdout + result.stderr  # printed once
    token = tokens[0]
    assert result.stdout.strip() == token  # alone on stdout, for `TOKEN=$(kgmem keys create …)`
    assert "cannot be shown again" in result.stderr
    key_id = parse_token(token)[0]
    created.append(key_id)
    assert key_id in result.stderr

    key = KeyStore(gateway).authenticate(token)
    assert key is not None
    assert key.name == "ci job" and key.scopes == ["read", "write"] and key.spaces == ["acme", "beta"]

    listed = kgmem("keys", "list")
    assert listed.returncode == 0, listed.stderr
    row = next((line for line in listed.stdout.splitlines() if key_id in line), None)
    assert row is not None, listed.stdout
    assert "ci job" in row and "read, write" in row and "acme, beta" in row
    assert token not in listed.stdout and parse_token(token)[1] not in listed.stdout
    assert "$argon2" not in listed.stdout

    revoked = kgmem("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert f"Revoked API key {key_id}" in revoked.stdout
    assert KeyStore(gateway).authenticate(token) is None

    again = kgmem("keys", "revoke", key_id)
    assert again.returncode == 0, again.stderr
    assert "already revoked" in again.stdout

    listed = json.loads(kgmem("keys", "list", "--json").stdout)
    mine = [k for k in listed if k["key_id"] == key_id]
    assert len(mine) == 1
    assert mine[0]["revoked_at"] is not None
    assert mine[0]["last_used_at"] is not None
    assert all("hash" not in k and "token" not in k for k in listed)


def test_create_json(created):
    result = kgmem("keys", "create", "--name", "admin", "--scope", "admin", "--space", "*", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    created.append(payload["key_id"])
    assert payload["token"].startswith(f"kgm_{payload['key_id']}_")
    assert payload["scopes"] == ["admin"] and payload["spaces"] == ["*"]
    assert "hash" not in payload
    assert "cannot be shown again" in result.stderr
    assert len(TOKEN.findall(result.stdout + result.stderr)) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--scope", "superuser", "--space", "acme"],
     "error: unknown scope 'superuser': choose from read, write, cypher, admin"),
    (["--scope", "read", "--space", "*"],
     "error: the space '*' (all spaces) is allowed only for keys with the admin scope"),
    (["--scope", "read", "--space", "not a space"], "error: space 'not a space' is not valid"),
])
def test_invalid_grants_are_one_line(created, gateway, args, message):
    before = gateway.rows("MATCH (k:ApiKey) RETURN count(k) AS n")[0]["n"]
    line = assert_one_error_line(kgmem("keys", "create", "--name", "bad", *args))
    assert line.startswith(message), line
    assert gateway.rows("MATCH (k:ApiKey) RETURN count(k) AS n")[0]["n"] == before


def test_revoking_an_unknown_key_is_one_line(managed_neo4j):
    line = assert_one_error_line(kgmem("keys", "revoke", "nosuchkey000"))
    assert line == "error: no API key 'nosuchkey000'; `kgmem keys list` shows them"
