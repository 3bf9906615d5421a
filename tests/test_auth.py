"""API keys against the real Neo4j: the key store, its cache, and the FastAPI dependency."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api import problems
from api.auth import (
    ALL_SPACES,
    ApiKey,
    KeyStore,
    Principal,
    Scope,
    check_key_name,
    ensure_key_schema,
    format_token,
    keyed_hash,
    new_key_id,
    new_secret,
    parse_token,
    require,
    server_secret,
    validate_grant,
)
from api.problems import ApiProblem
from graph.errors import Conflict, InvalidInput
from graph.settings import Settings

ALL_KEY_PROPERTIES = "MATCH (k:ApiKey {key_id: $key_id}) RETURN properties(k) AS props"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher(PasswordHasher):
    """argon2-cffi's hasher, counting what it is asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.verified: list[str] = []
        self.hashed = 0

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        self.verified.append(hash)
        return super().verify(hash, password)

    def hash(self, password, *, salt=None):
        self.hashed += 1
        return super().hash(password, salt=salt)


class GaugedHasher(PasswordHasher):
    """argon2-cffi's hasher, recording how many verifications run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def verify(self, hash, password):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # long enough for every check of the test to be under way at once
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


# What versions before #15 ran to store a key, with `PasswordHasher().hash(secret)` as the hash.
OLD_CREATE_KEY = (
    "CREATE (k:ApiKey {key_id: $key_id, hash: $hash, name: $name, scopes: $scopes, spaces: $spaces, "
    "created_at: $now}) RETURN k.key_id AS key_id"
)


def _delete_keys(gateway, key_ids) -> None:
    gateway.write("MATCH (k:ApiKey) WHERE k.key_id IN $ids DETACH DELETE k", ids=list(key_ids))


@pytest.fixture
def created(gateway):
    """key_ids this test created; their nodes are deleted afterwards (keys live in no space)."""
    ids: list[str] = []
    yield ids
    _delete_keys(gateway, ids)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(gateway, clock) -> KeyStore:
    store = KeyStore(gateway, clock=clock)
    store.ensure_schema()
    return store


@pytest.fixture
def make_key(store, created):
    def make(scopes=("read",), spaces=("acme",), name="test key") -> tuple[ApiKey, str]:
        key, token = store.create(name, scopes, spaces)
        created.append(key.key_id)
        return key, token

    return make


@pytest.fixture
def no_keys(gateway):
    """No ApiKey at all for the test; whatever keys were there come back afterwards."""
    saved = [r["props"] for r in gateway.rows("MATCH (k:ApiKey) RETURN properties(k) AS props")]
    gateway.write("MATCH (k:ApiKey) DETACH DELETE k")
    yield
    gateway.write("MATCH (k:ApiKey) DETACH DELETE k")
    gateway.write("UNWIND $rows AS row CREATE (k:ApiKey) SET k = row", rows=saved)


def count_keys(gateway) -> int:
    return gateway.rows("MATCH (k:ApiKey) RETURN count(k) AS n")[0]["n"]


def stored_hash(gateway, key_id: str) -> str:
    return gateway.rows(ALL_KEY_PROPERTIES, key_id=key_id)[0]["props"]["hash"]


@pytest.fixture
def legacy_key(gateway, created) -> tuple[str, str]:
    """(key_id, token) of a key exactly as versions before #15 stored it: an argon2id hash of the secret."""
    key_id, secret = new_key_id(), new_secret()
    gateway.write(OLD_CREATE_KEY, key_id=key_id, hash=PasswordHasher().hash(secret), name="made by an older kgmem",
                  scopes=["read"], spaces=["acme"], now=datetime.now(UTC))
    created.append(key_id)
    return key_id, format_token(key_id, secret)


# -- the key store ---------------------------------------------------------------------------------

def test_create_then_authenticate(make_key, store):
    key, token = make_key(scopes=["read", "write"], spaces=["acme", "beta"], name="ci job")
    assert token.startswith(f"kgm_{key.key_id}_")
    assert len(key.key_id) == 12
    assert len(parse_token(token)[1]) >= 43  # 32 random bytes, url-safe base64
    assert key.scopes == [Scope.READ, Scope.WRITE]
    assert key.spaces == ["acme", "beta"]
    assert key.revoked_at is None and key.last_used_at is None

    found = store.authenticate(token)
    assert found is not None
    assert found.key_id == key.key_id
    assert found.name == "ci job"
    assert found.scopes == [Scope.READ, Scope.WRITE]
    assert found.can_access("acme") and not found.can_access("gamma")
    assert found.last_used_at is not None
    assert store.get(key.key_id).last_used_at is not None  # recorded in Neo4j


def test_two_keys_get_different_ids_and_secrets(make_key):
    (one, token_one), (two, token_two) = make_key(), make_key()
    assert one.key_id != two.key_id
    assert parse_token(token_one)[1] != parse_token(token_two)[1]


def test_wrong_secret_unknown_id_and_malformed_tokens_are_refused(make_key, store):
    key, token = make_key()
    key_id, secret = parse_token(token)
    wrong_secret = f"kgm_{key_id}_{'A' * len(secret)}"
    unknown_id = f"kgm_{'Z' * 12}_{secret}"
    for bad in [wrong_secret, unknown_id, "", "kgm_", "Bearer " + token, token + "x" * 200, token[:-1] + "!",
                f"kgx_{key_id}_{secret}", f"kgm_{key_id}{secret}", "x" * 100_000, f"kgm_{key_id}_short"]:
        assert store.authenticate(bad) is None, bad
    assert store.authenticate(token) is not None  # the real one still works


def test_checking_tokens_never_runs_argon2_for_keys_made_now(gateway, created):
    """A bad token costs a keyed hash, not a memory-hard one: whatever the token, argon2 is not touched."""
    hasher = CountingHasher()
    store = KeyStore(gateway, hasher=hasher)
    key, token = store.create("no argon2", ["read"], ["acme"])
    created.append(key.key_id)
    key_id, secret = parse_token(token)
    assert store.authenticate(f"kgm_{'Q' * 12}_{secret}") is None  # unknown key id
    assert store.authenticate(f"kgm_{key_id}_{'A' * len(secret)}") is None  # wrong secret
    assert store.authenticate(token) is not None
    assert (hasher.verified, hasher.hashed) == ([], 0)


def test_a_key_hashed_with_argon2_keeps_working_and_is_rehashed_on_first_use(legacy_key, gateway):
    key_id, token = legacy_key
    secret = parse_token(token)[1]
    hasher = CountingHasher()
    store = KeyStore(gateway, hasher=hasher)

    assert store.authenticate(f"kgm_{key_id}_{'A' * len(secret)}") is None  # wrong secret: refused, nothing replaced
    assert stored_hash(gateway, key_id).startswith("$argon2id$")

    key = store.authenticate(token)
    assert key is not None
    assert (key.key_id, key.name, key.scopes, key.spaces) == (key_id, "made by an older kgmem", ["read"], ["acme"])
    assert [h[:10] for h in hasher.verified] == ["$argon2id$"] * 2  # argon2 for the old hash, and only for it
    assert stored_hash(gateway, key_id) == keyed_hash(server_secret(store.settings), secret)

    another_replica = KeyStore(gateway, hasher=(later := CountingHasher()))  # no cache: checks Neo4j's hash
    assert another_replica.authenticate(token) is not None
    assert later.verified == []


def test_a_revoked_key_hashed_with_argon2_stays_refused(legacy_key, gateway):
    key_id, token = legacy_key
    store = KeyStore(gateway)
    assert store.revoke(key_id) is True
    assert store.authenticate(token) is None
    assert stored_hash(gateway, key_id).startswith("$argon2id$")


def test_a_key_hashed_under_another_server_secret_is_refused_and_the_log_says_why(gateway, created, caplog):
    """Replicas (and `kgmem keys`) must share the server secret; one that does not says so, once per key."""
    replica_a = KeyStore(gateway, secret=b"a" * 32)
    replica_b = KeyStore(gateway, secret=b"b" * 32)
    key, token = replica_a.create("made on replica a", ["read"], ["acme"])
    created.append(key.key_id)
    with caplog.at_level(logging.WARNING, logger="api.auth"):
        assert replica_b.authenticate(token) is None
        assert replica_b.authenticate(token) is None
    told = [r.getMessage() for r in caplog.records if "another server secret" in r.getMessage()]
    assert len(told) == 1 and key.key_id in told[0] and "KGMEM_API_KEY_SECRET" in told[0]
    assert replica_a.authenticate(token) is not None


def test_revoked_keys_are_refused(make_key, store):
    key, token = make_key()
    assert store.authenticate(token) is not None
    assert store.revoke(key.key_id) is True
    assert store.authenticate(token) is None  # at once on this instance, despite the cache
    assert store.get(key.key_id).revoked_at is not None
    assert store.revoke(key.key_id) is False  # already revoked
    assert store.revoke("nosuchkey000") is False


def test_other_replicas_see_a_revocation_within_the_ttl(make_key, store, gateway, clock):
    key, token = make_key()
    assert store.authenticate(token) is not None
    other_replica = KeyStore(gateway)
    assert other_replica.revoke(key.key_id) is True
    clock.now += store.cache_ttl_s - 1
    assert store.authenticate(token) is not None  # still cached here
    clock.now += 2
    assert store.authenticate(token) is None  # TTL over: Neo4j says revoked


def test_only_successes_are_cached(make_key, store):
    key, token = make_key()
    key_id, secret = parse_token(token)
    assert store.authenticate(f"kgm_{key_id}_{'B' * len(secret)}") is None
    assert len(store._cache) == 0
    assert store.authenticate(token) is not None
    assert len(store._cache) == 1


def test_the_hash_is_a_keyed_hmac_and_the_secret_is_nowhere_in_neo4j(make_key, store, gateway):
    key, token = make_key(name="secretive")
    secret = parse_token(token)[1]
    props = gateway.rows(ALL_KEY_PROPERTIES, key_id=key.key_id)[0]["props"]
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}", props["hash"])
    assert props["hash"] == keyed_hash(server_secret(store.settings), secret)
    assert set(props) >= {"key_id", "hash", "name", "scopes", "spaces", "created_at"}
    assert "space" not in props  # not tenant data
    for value in props.values():
        assert secret not in str(value) and token not in str(value)
    leaks = gateway.rows(
        "MATCH (n) UNWIND keys(n) AS p WITH n[p] AS v WHERE v IS :: STRING AND v CONTAINS $secret RETURN count(*) AS n",
        secret=secret)[0]["n"]
    assert leaks == 0


def test_list_never_returns_hashes(make_key, store):
    key, token = make_key(name="listed")
    listed = {k.key_id: k for k in store.list()}
    assert key.key_id in listed
    assert listed[key.key_id].name == "listed"
    dumped = listed[key.key_id].model_dump_json()
    assert "hash" not in dumped and "hmac-sha256" not in dumped
    assert parse_token(token)[1] not in dumped
    assert "hash" not in ApiKey.model_fields


def test_keys_are_unique_by_key_id(make_key, gateway):
    key, _ = make_key()
    from neo4j.exceptions import ConstraintError

    with pytest.raises(Conflict) as raised:  # the gateway's translation of Neo4j's ConstraintError
        gateway.write("CREATE (:ApiKey {key_id: $key_id})", key_id=key.key_id)
    assert isinstance(raised.value.__cause__, ConstraintError)
    assert gateway.rows("MATCH (k:ApiKey {key_id: $key_id}) RETURN count(k) AS n", key_id=key.key_id)[0]["n"] == 1


def test_ensure_key_schema_is_idempotent(gateway):
    ensure_key_schema(gateway)
    ensure_key_schema(gateway)
    names = {r["name"] for r in gateway.rows("SHOW CONSTRAINTS YIELD name RETURN name")}
    assert {"api_key_id", "api_key_bootstrap"} <= names


@pytest.mark.parametrize(("scopes", "spaces", "message"), [
    (["read", "bogus"], ["acme"], "unknown scope 'bogus'"),
    ([], ["acme"], "at least one scope"),
    (["read"], [], "at least one space"),
    (["read"], ["bad space!"], "space 'bad space!' is not valid"),
    (["read"], ["-leading"], "is not valid"),
    (["read", "write"], ["*"], "only for keys with the admin scope"),
])
def test_scopes_and_spaces_are_validated(store, gateway, scopes, spaces, message):
    before = count_keys(gateway)
    with pytest.raises(InvalidInput, match=message):
        store.create("bad", scopes, spaces)
    assert count_keys(gateway) == before


def test_grant_normalisation():
    assert validate_grant([" READ", "read", Scope.ADMIN], ["acme", "acme", "b:c-1.d_e"]) == (
        [Scope.READ, Scope.ADMIN], ["acme", "b:c-1.d_e"])
    assert validate_grant(["admin"], ["acme", "*"]) == ([Scope.ADMIN], [ALL_SPACES])
    with pytest.raises(InvalidInput, match="name"):
        check_key_name("   ")
    with pytest.raises(InvalidInput, match="name"):
        check_key_name("n" * 201)
    assert check_key_name("  ci  ") == "ci"
    with pytest.raises(ValueError, match="admin"):
        ApiKey(key_id="x" * 12, name="n", scopes=[Scope.READ], spaces=["*"], created_at="2025-01-01T00:00:00Z")


def test_bootstrap_creates_one_admin_key_only_when_none_exist(no_keys, store, gateway):
    token = store.ensure_bootstrap_key()
    assert token is not None
    key = store.authenticate(token)
    assert key is not None
    assert set(key.scopes) == set(Scope)
    assert key.spaces == ["default"]
    assert count_keys(gateway) == 1

    assert store.ensure_bootstrap_key() is None
    assert count_keys(gateway) == 1
    store.revoke(key.key_id)
    assert store.ensure_bootstrap_key() is None  # a revoked key is still a key: no silent new admin
    assert count_keys(gateway) == 1


def test_no_bootstrap_when_another_key_exists(no_keys, store, gateway):
    store.create("first", ["read"], ["acme"])
    assert store.ensure_bootstrap_key("acme") is None
    assert count_keys(gateway) == 1


def test_bootstrap_custom_space_and_validation(no_keys, store):
    with pytest.raises(InvalidInput):
        store.ensure_bootstrap_key("not a space")
    token = store.ensure_bootstrap_key("team-a")
    assert store.authenticate(token).spaces == ["team-a"]


def test_replicas_bootstrapping_at_once_make_one_key(no_keys, gateway):
    stores = [KeyStore(gateway) for _ in range(4)]
    stores[0].ensure_schema()
    barrier = threading.Barrier(len(stores))
    tokens: list[str | None] = [None] * len(stores)

    def run(i: int) -> None:
        barrier.wait()
        tokens[i] = stores[i].ensure_bootstrap_key()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([t for t in tokens if t]) == 1, tokens
    assert count_keys(gateway) == 1


# -- the FastAPI dependency ------------------------------------------------------------------------

def make_app(store: KeyStore | None, *, auth_disabled: bool = False) -> FastAPI:
    app = FastAPI()
    problems.install(app)  # as the real app: ApiProblem (429, 503) answers as a problem
    if store is not None:
        app.state.key_store = store
    app.state.auth_disabled = auth_disabled

    @app.get("/v1/spaces/{space}/things")
    def read_things(space: str, principal: Principal = Depends(require(Scope.READ))) -> dict:
        return {"space": principal.space, "key_id": principal.key.key_id, "op": "read"}

    @app.post("/v1/spaces/{space}/things")
    def write_things(space: str, principal: Principal = Depends(require(Scope.WRITE))) -> dict:
        return {"space": principal.space, "key_id": principal.key.key_id, "op": "write"}

    @app.get("/v1/admin/keys")
    def admin_keys(principal: Principal = Depends(require(Scope.ADMIN))) -> dict:
        return {"space": principal.space, "key_id": principal.key.key_id}

    return app


@pytest.fixture
def client(store) -> TestClient:
    return TestClient(make_app(store))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_ok_with_a_bound_key_and_the_scope(client, make_key):
    key, token = make_key(scopes=["read", "write"], spaces=["acme"])
    response = client.get("/v1/spaces/acme/things", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"space": "acme", "key_id": key.key_id, "op": "read"}
    response = client.post("/v1/spaces/acme/things", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["op"] == "write"


def test_401_without_a_key(client):
    response = client.get("/v1/spaces/acme/things")
    assert_401(response)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "missing API key" in response.json()["detail"]


def test_401_with_another_scheme(client, make_key):
    _, token = make_key()
    response = client.get("/v1/spaces/acme/things", headers={"Authorization": f"Basic {token}"})
    assert_401(response)
    assert "Bearer" in response.json()["detail"]


def test_401_with_a_bad_token(client, make_key):
    key, token = make_key()
    key_id, secret = parse_token(token)
    for bad in ["nonsense", f"kgm_{key_id}_{'C' * len(secret)}", f"kgm_{'Y' * 12}_{secret}"]:
        response = client.get("/v1/spaces/acme/things", headers=bearer(bad))
        assert_401(response)
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert response.json()["detail"] == "invalid or revoked API key"


def test_401_with_a_revoked_key(client, make_key, store):
    key, token = make_key()
    assert client.get("/v1/spaces/acme/things", headers=bearer(token)).status_code == 200
    store.revoke(key.key_id)
    response = client.get("/v1/spaces/acme/things", headers=bearer(token))
    assert_401(response)
    assert "revoked" in response.json()["detail"]


def test_403_names_the_missing_scope(client, make_key):
    _, token = make_key(scopes=["read"], spaces=["acme"])
    response = client.post("/v1/spaces/acme/things", headers=bearer(token))
    assert response.status_code == 403, response.text
    assert "'write'" in response.json()["detail"]
    assert "WWW-Authenticate" not in response.headers


def test_404_for_a_space_the_key_is_not_bound_to(client, make_key):
    _, token = make_key(scopes=["read"], spaces=["acme"])
    response = client.get("/v1/spaces/other-tenant/things", headers=bearer(token))
    assert response.status_code == 404, response.text
    assert response.json()["detail"] == "no such space: 'other-tenant'"


def test_admin_keys_for_all_spaces(client, make_key):
    key, token = make_key(scopes=["admin", "read"], spaces=["*"])
    for space in ["acme", "anything-else"]:
        response = client.get(f"/v1/spaces/{space}/things", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["space"] == space
    response = client.get("/v1/admin/keys", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"space": None, "key_id": key.key_id}


def test_admin_scope_does_not_imply_read(client, make_key):
    _, token = make_key(scopes=["admin"], spaces=["acme"])
    response = client.get("/v1/spaces/acme/things", headers=bearer(token))
    assert response.status_code == 403
    assert "'read'" in response.json()["detail"]


def test_the_dev_flag_admits_everything(store):
    client = TestClient(make_app(store, auth_disabled=True))
    for method in ("get", "post"):
        response = getattr(client, method)("/v1/spaces/whatever/things")
        assert response.status_code == 200, response.text
        assert response.json()["space"] == "whatever"
    assert client.get("/v1/admin/keys").status_code == 200


def test_without_a_key_store_the_app_fails_closed():
    client = TestClient(make_app(None), raise_server_exceptions=False)
    assert client.get("/v1/spaces/acme/things", headers=bearer("kgm_x")).status_code == 500


def test_the_dependency_is_in_openapi(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# -- failed checks per client, checks at once -------------------------------------------------------

THINGS = "/v1/spaces/acme/things"


def from_address(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


def test_an_address_that_used_up_its_failed_checks_gets_429_before_any_lookup(gateway, make_key, clock):
    store = KeyStore(gateway, settings=Settings(api_auth_failures_per_minute=3), clock=clock)
    app = make_app(store)
    attacker, neighbour = from_address(app, "198.51.100.7"), from_address(app, "198.51.100.8")
    _, token = make_key()
    key_id, secret = parse_token(token)
    bad = f"kgm_{key_id}_{'D' * len(secret)}"
    assert [attacker.get(THINGS, headers=bearer(bad)).status_code for _ in range(3)] == [401, 401, 401]

    lookups: list[str] = []
    stop = gateway.observe(lambda operation, seconds: lookups.append(operation))
    try:
        refused = attacker.get(THINGS, headers=bearer(token))  # even a good key this store has not checked yet
    finally:
        stop()
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"] == "urn:kgmem:problem:auth-rate-limited"
    assert "198.51.100.7" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) == 20  # one failed check back every 20 s at 3 a minute
    assert lookups == []  # refused before Neo4j was asked anything

    assert neighbour.get(THINGS, headers=bearer(token)).status_code == 200  # limits are per address
    assert attacker.get(THINGS, headers=bearer(token)).status_code == 200  # checked now (cached): no check to limit
    clock.now += 20
    assert attacker.get(THINGS, headers=bearer(bad)).status_code == 401
    assert attacker.get(THINGS, headers=bearer(bad)).status_code == 429


def test_a_good_key_does_not_count_as_a_failed_check(gateway, make_key, clock):
    store = KeyStore(gateway, settings=Settings(api_auth_failures_per_minute=2), clock=clock)
    client = from_address(make_app(store), "198.51.100.9")
    bad = "kgm_" + "W" * 12 + "_" + "x" * 43
    answers = [client.get(THINGS, headers=bearer(bad)).status_code]
    answers += [client.get(THINGS, headers=bearer(make_key()[1])).status_code for _ in range(3)]
    answers += [client.get(THINGS, headers=bearer(bad)).status_code for _ in range(2)]
    assert answers == [401, 200, 200, 200, 401, 429]


def test_malformed_tokens_count_as_failed_checks(gateway, clock):
    store = KeyStore(gateway, settings=Settings(api_auth_failures_per_minute=2), clock=clock)
    client = from_address(make_app(store), "198.51.100.10")
    assert [client.get(THINGS, headers=bearer("nonsense")).status_code for _ in range(3)] == [401, 401, 429]


def test_at_most_max_concurrent_checks_run_at_once_and_too_many_waiting_get_503(legacy_key, gateway):
    """An old key's argon2 hash makes each check slow and memory-hard: a flood of wrong secrets for it
    (from as many addresses) runs two checks at a time, and turns away what would wait too long."""
    hasher = GaugedHasher()
    store = KeyStore(gateway, settings=Settings(api_auth_max_concurrent=2, api_auth_failures_per_minute=0),
                     hasher=hasher)
    key_id, token = legacy_key
    bad = f"kgm_{key_id}_{'E' * len(parse_token(token)[1])}"

    async def attempt(n: int) -> int:
        try:
            return 200 if await store.admit(bad, f"192.0.2.{n}") else 401
        except ApiProblem as refused:
            assert refused.headers == {"Retry-After": "1"}
            return refused.status

    async def flood() -> list[int]:
        return await asyncio.gather(*(attempt(n) for n in range(60)))

    answers = asyncio.run(flood())
    assert hasher.most == 2
    assert set(answers) == {401, 503}
    assert answers.count(401) == 2 + 2 * 16  # the two running and the 32 allowed to wait were checked
    assert store.authenticate(token) is not None  # the key itself is fine


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ("false", False), ("0", False), ("no", False),
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
])
def test_auth_disabled_is_a_setting(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("KGMEM_AUTH_DISABLED", raising=False)
    else:
        monkeypatch.setenv("KGMEM_AUTH_DISABLED", value)
    assert Settings().auth_disabled is expected


def test_auth_disabled_typos_are_errors(monkeypatch):
    monkeypatch.setenv("KGMEM_AUTH_DISABLED", "ture")
    with pytest.raises(ValidationError, match="auth_disabled"):
        Settings()
