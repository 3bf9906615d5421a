"""API keys: Bearer tokens with scopes, bound to spaces, stored as keyed hashes in Neo4j.

A token reads `kgm_<key_id>_<secret>`: `key_id` (12 letters and digits) finds the key, the
secret (32 random bytes, url-safe base64) proves it. Neo4j keeps only HMAC-SHA-256 of the
secret under a server-side secret (the setting `api_key_secret`, else a file generated once in
the data directory), on an `(:ApiKey)` node that belongs to no space (keys are not tenant data):

    (:ApiKey {key_id, hash, name, scopes, spaces, created_at, last_used_at, revoked_at})

The secret is 256 random bits, not a password: a fast keyed hash protects it as well as a slow
one, and a bad token costs microseconds, not an argon2id check (64 MiB, tens of ms) that anyone
could make the server run. Keys made by older versions carry argon2 hashes; they keep working,
and their first successful use replaces the hash.

    store = KeyStore(gateway, settings=settings)              # get_settings() when not given
    key, token = store.create("ci", [Scope.READ], ["acme"])   # the token is shown once
    store.authenticate(token)                                 # ApiKey, or None
    await store.admit(token, client)                          # the same, for a request (limits)
    store.revoke(key.key_id)

FastAPI routes guard themselves with `require(scope)`; the app must set
`app.state.key_store` (a KeyStore) and `app.state.auth_disabled` (the explicit dev flag
`KGMEM_AUTH_DISABLED`, the setting `auth_disabled`). See docs/auth.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, model_validator

from api.limits import RateLimiter, client_address
from api.problems import ApiProblem
from graph.errors import ConfigurationError, Conflict, InvalidInput, KgmemError
from graph.gateway import Gateway
from graph.settings import Settings, get_settings
from graph.store import check_space

log = logging.getLogger(__name__)

TOKEN_PREFIX = "kgm"
KEY_ID_LENGTH = 12
SECRET_BYTES = 32
ALL_SPACES = "*"
DEFAULT_CACHE_TTL_S = 60.0
DEFAULT_CACHE_SIZE = 1024
NAME_MAX_LENGTH = 200
HASH_SCHEME = "hmac-sha256"  # stored hashes read `hmac-sha256:<server secret id>:<hex>`
LEGACY_HASH_PREFIX = "$argon2"  # what versions before #15 stored
SECRET_FILE_NAME = "api-key-secret"
SERVER_SECRET_MIN_LENGTH = 32
WAITING_PER_CHECK = 16  # checks that may wait for each running one before requests are turned away (503)

# key_id has no '_' so the token splits unambiguously; the secret is url-safe base64 (43 chars for 32 bytes).
_KEY_ID_ALPHABET = string.ascii_letters + string.digits
_TOKEN = re.compile(r"^kgm_(?P<key_id>[A-Za-z0-9]{12})_(?P<secret>[A-Za-z0-9_-]{43,128})$")
_TOKEN_MAX_LENGTH = 4 + KEY_ID_LENGTH + 1 + 128


class Scope(StrEnum):
    """What a key may do. Scopes do not imply one another: an admin key that should also read
    carries `read` too (the bootstrap key carries all four)."""

    READ = "read"
    WRITE = "write"
    CYPHER = "cypher"
    ADMIN = "admin"


class ApiKey(BaseModel):
    """A key as the service sees it; never its hash or secret."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    scopes: list[Scope]
    spaces: list[str]  # "*" (admin keys only) means every space
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @model_validator(mode="after")
    def _wildcard_is_admin_only(self) -> ApiKey:
        if ALL_SPACES in self.spaces and Scope.ADMIN not in self.scopes:
            raise ValueError("the space '*' (all spaces) is allowed only for keys with the admin scope")
        return self

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    def can_access(self, space: str) -> bool:
        return ALL_SPACES in self.spaces or space in self.spaces


# -- validation ------------------------------------------------------------------------------------

def parse_scopes(scopes: Iterable[str | Scope]) -> list[Scope]:
    """Scope names to Scopes, in order, without repeats; an unknown or missing one is InvalidInput."""
    parsed: list[Scope] = []
    for raw in scopes:
        value = str(raw).strip().lower()
        try:
            scope = Scope(value)
        except ValueError:
            raise InvalidInput(
                f"unknown scope {str(raw)!r}: choose from {', '.join(s.value for s in Scope)}") from None
        if scope not in parsed:
            parsed.append(scope)
    if not parsed:
        raise InvalidInput(f"a key needs at least one scope: {', '.join(s.value for s in Scope)}")
    return parsed


def validate_grant(scopes: Iterable[str | Scope], spaces: Iterable[str]) -> tuple[list[Scope], list[str]]:
    """The scopes and spaces of a new key, checked: known scopes, valid space names (graph.store.check_space),
    at least one of each, and '*' (all spaces) only together with the admin scope and alone."""
    parsed = parse_scopes(scopes)
    bound: list[str] = []
    for raw in spaces:
        space = raw.strip()
        if space != ALL_SPACES:
            check_space(space)
        if space not in bound:
            bound.append(space)
    if not bound:
        raise InvalidInput("a key needs at least one space (or '*' for all spaces, admin keys only)")
    if ALL_SPACES in bound:
        if Scope.ADMIN not in parsed:
            raise InvalidInput("the space '*' (all spaces) is allowed only for keys with the admin scope")
        bound = [ALL_SPACES]
    return parsed, bound


def check_key_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"a key's name must be 1-{NAME_MAX_LENGTH} characters")
    return name


# -- tokens ----------------------------------------------------------------------------------------

def new_key_id() -> str:
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def format_token(key_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret), or None when the token is not of kgmem's form."""
    if not isinstance(token, str) or len(token) > _TOKEN_MAX_LENGTH:
        return None
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return match["key_id"], match["secret"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- the server-side secret and the keyed hash ---------------------------------------------------------

def secret_id(server_secret: bytes) -> str:
    """A short fingerprint of the server secret, stored with each hash: it tells a key hashed under another
    secret (a replica or `kgmem keys` that does not share it) from a wrong token. It reveals nothing of it."""
    return hmac.new(server_secret, b"kgmem api key secret id", hashlib.sha256).hexdigest()[:8]


def keyed_hash(server_secret: bytes, secret: str) -> str:
    """What Neo4j keeps of a key's secret: `hmac-sha256:<secret_id>:<HMAC-SHA-256(server secret, secret) hex>`."""
    digest = hmac.new(server_secret, secret.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_SCHEME}:{secret_id(server_secret)}:{digest}"


def secret_file(settings: Settings) -> Path:
    return settings.api_key_secret_file or settings.home / SECRET_FILE_NAME


def server_secret(settings: Settings) -> bytes:
    """The secret API keys are hashed under: the setting `api_key_secret`, else the secret file, generated
    on first use (mode 0600). Every process that creates or checks keys must use the same one."""
    if settings.api_key_secret is not None:
        return settings.api_key_secret.get_secret_value().encode()
    path = secret_file(settings)
    try:
        value = path.read_text().strip() if path.exists() else _create_secret_file(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot read or create the API key secret {path}: {exc.strerror or exc}; "
                                 "fix the file's permissions or set KGMEM_API_KEY_SECRET") from exc
    if len(value) < SERVER_SECRET_MIN_LENGTH:
        raise ConfigurationError(f"the API key secret {path} holds fewer than {SERVER_SECRET_MIN_LENGTH} "
                                 "characters; restore it from a backup (keys hashed under it need it)")
    return value.encode()


def _create_secret_file(path: Path) -> str:
    """Write a new secret next to `path`, then link it into place: a replica starting at the same moment
    on shared storage either wins or reads the winner's, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return path.read_text().strip()
        log.info("generated the API key secret %s; every replica must share it (docs/auth.md)", path)
        return value
    finally:
        draft.unlink(missing_ok=True)


def _now() -> datetime:
    return datetime.now(UTC)


# -- Cypher ----------------------------------------------------------------------------------------

KEY_CONSTRAINTS = [
    "CREATE CONSTRAINT api_key_id IF NOT EXISTS FOR (k:ApiKey) REQUIRE k.key_id IS UNIQUE",
    # Only the bootstrap key carries `bootstrap`; two replicas bootstrapping at once cannot both win.
    "CREATE CONSTRAINT api_key_bootstrap IF NOT EXISTS FOR (k:ApiKey) REQUIRE k.bootstrap IS UNIQUE",
]

_KEY_FIELDS = "k {.key_id, .name, .scopes, .spaces, .created_at, .last_used_at, .revoked_at}"

CREATE_KEY = (
    "CREATE (k:ApiKey {key_id: $key_id, hash: $hash, name: $name, scopes: $scopes, spaces: $spaces, "
    "created_at: $now}) "
    f"RETURN {_KEY_FIELDS} AS key"
)
CREATE_BOOTSTRAP_KEY = (
    "OPTIONAL MATCH (existing:ApiKey) "
    "WITH count(existing) AS existing WHERE existing = 0 "
    "CREATE (k:ApiKey {key_id: $key_id, hash: $hash, name: $name, scopes: $scopes, spaces: $spaces, "
    "created_at: $now, bootstrap: true}) "
    f"RETURN {_KEY_FIELDS} AS key"
)
LIST_KEYS = f"MATCH (k:ApiKey) RETURN {_KEY_FIELDS} AS key ORDER BY k.created_at, k.key_id"
GET_KEY = f"MATCH (k:ApiKey {{key_id: $key_id}}) RETURN {_KEY_FIELDS} AS key"
GET_KEY_FOR_AUTH = f"MATCH (k:ApiKey {{key_id: $key_id}}) RETURN {_KEY_FIELDS} AS key, k.hash AS hash"
REVOKE_KEY = (
    "MATCH (k:ApiKey {key_id: $key_id}) WHERE k.revoked_at IS NULL "
    "SET k.revoked_at = $now RETURN k.key_id AS key_id"
)
TOUCH_KEY = "MATCH (k:ApiKey {key_id: $key_id}) SET k.last_used_at = $now"
# An argon2 hash (older versions) replaced by the keyed one, unless something changed it meanwhile.
REHASH_KEY = "MATCH (k:ApiKey {key_id: $key_id}) WHERE k.hash = $old SET k.hash = $new"


def ensure_key_schema(gateway: Gateway) -> None:
    """The ApiKey constraints; idempotent."""
    for statement in KEY_CONSTRAINTS:
        gateway.write(statement)


def _api_key(row: dict[str, Any]) -> ApiKey:
    return ApiKey.model_validate(row)


# -- the cache -------------------------------------------------------------------------------------

class _VerifiedCache:
    """Successful verifications by sha256(token), for `ttl_s` seconds, least recently used out first."""

    def __init__(self, maxsize: int, ttl_s: float, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._ttl_s = ttl_s
        self._clock = clock

    def get(self, digest: str) -> ApiKey | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            expires, key = entry
            if self._clock() >= expires:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return key

    def put(self, digest: str, key: ApiKey) -> None:
        if self._maxsize <= 0 or self._ttl_s <= 0:
            return
        with self._lock:
            self._entries[digest] = (self._clock() + self._ttl_s, key)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)

    def drop_key(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (_, key) in self._entries.items() if key.key_id == key_id]:
                del self._entries[digest]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# -- the store -------------------------------------------------------------------------------------

class KeyStore:
    """API keys in Neo4j.

    `authenticate` caches successful checks for `cache_ttl_s`, so a client's repeated requests cost
    no Neo4j lookup. `revoke` drops the key from this instance's cache at once; other replicas,
    with caches of their own, stop accepting a revoked key within `cache_ttl_s`.

    Requests authenticate through `admit`, which adds what a server facing the network needs: a
    client address that has used up its failed checks (`api_auth_failures_per_minute`) gets a 429
    before anything is looked up, and at most `api_auth_max_concurrent` checks run at once, in
    worker threads of their own, the rest waiting without holding a thread (503 when too many wait).
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        settings: Settings | None = None,
        secret: bytes | None = None,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        cache_size: int = DEFAULT_CACHE_SIZE,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.settings = settings or get_settings()
        self.cache_ttl_s = cache_ttl_s
        self._secret = secret  # the server secret; read (or generated) at first use when not given
        self._secret_id = secret_id(secret) if secret is not None else None
        self._legacy_hasher = hasher or PasswordHasher()  # only for keys still carrying an argon2 hash
        self._cache = _VerifiedCache(cache_size, cache_ttl_s, clock)
        self._failures = RateLimiter(self.settings.api_auth_failures_per_minute, clock=clock)
        self._checks = anyio.CapacityLimiter(self.settings.api_auth_max_concurrent)
        self._max_pending = (1 + WAITING_PER_CHECK) * self.settings.api_auth_max_concurrent  # running and waiting
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._lock = threading.Lock()
        self._schema_ready = False
        self._told_other_secret: set[str] = set()

    # -- schema ----------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        with self._lock:
            if not self._schema_ready:
                ensure_key_schema(self.gateway)
                self._schema_ready = True

    # -- management ------------------------------------------------------------------------------
    def create(self, name: str, scopes: Iterable[str | Scope], spaces: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key and its token. The token is not kept anywhere: show it to the user once."""
        name = check_key_name(name)
        parsed_scopes, bound_spaces = validate_grant(scopes, spaces)
        self.ensure_schema()
        return self._create(CREATE_KEY, name, parsed_scopes, bound_spaces)  # type: ignore[return-value]

    def ensure_bootstrap_key(self, default_space: str = "default") -> str | None:
        """With no key at all in Neo4j, an admin key with every scope for `default_space`, and its
        token (print it once); None when any key (even a revoked one) exists."""
        _, spaces = validate_grant([Scope.ADMIN], [default_space])
        self.ensure_schema()
        try:
            created = self._create(CREATE_BOOTSTRAP_KEY, "bootstrap admin key", list(Scope), spaces)
        except Conflict:
            return None  # another replica bootstrapped at the same moment
        if created is None:
            return None
        return created[1]

    def _create(self, statement: str, name: str, scopes: list[Scope], spaces: list[str]) -> tuple[ApiKey, str] | None:
        secret = new_secret()
        hashed = self._keyed_hash(secret)
        for _ in range(5):
            key_id = new_key_id()
            try:
                records = self.gateway.write(
                    statement, key_id=key_id, hash=hashed, name=name, scopes=[s.value for s in scopes],
                    spaces=spaces, now=_now())
            except Conflict:
                if self.get(key_id) is None:
                    raise  # not a key_id collision (the bootstrap race): the caller decides
                continue
            if not records:
                return None
            return _api_key(records[0]["key"]), format_token(key_id, secret)
        raise RuntimeError("could not find a free key_id")  # 62**12 ids: does not happen

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first; never a hash."""
        return [_api_key(row["key"]) for row in self.gateway.rows(LIST_KEYS)]

    def get(self, key_id: str) -> ApiKey | None:
        rows = self.gateway.rows(GET_KEY, key_id=key_id)
        return _api_key(rows[0]["key"]) if rows else None

    def revoke(self, key_id: str) -> bool:
        """Revoke a key: True when it was active and is revoked now, False when it does not
        exist or was revoked before. This instance stops accepting it at once; other replicas
        within their cache TTL."""
        revoked = self.gateway.write(REVOKE_KEY, key_id=key_id, now=_now())
        self._cache.drop_key(key_id)
        return bool(revoked)

    # -- authentication --------------------------------------------------------------------------
    def authenticate(self, token: str) -> ApiKey | None:
        """The active key `token` belongs to, or None (malformed, unknown, wrong secret, revoked).
        Without the per-client limit and the bound on checks at once: requests go through `admit`."""
        cached = self.cached(token)
        return cached if cached is not None else self._check(token)

    def cached(self, token: str) -> ApiKey | None:
        """The key of a token this instance checked within the cache TTL; nothing is looked up."""
        if parse_token(token) is None:
            return None
        return self._cache.get(_digest(token))

    async def admit(self, token: str, client: str) -> ApiKey | None:
        """`authenticate` for a request from `client` (its address, `api.limits.client_address`).

        A cached token is answered at once. Otherwise each check takes a token from the client's
        bucket of failed checks and gives it back when the key is good: a client that has used them
        up gets a 429 (`ApiProblem`, with Retry-After) before anything is hashed or looked up. The
        check runs in a worker thread, at most `api_auth_max_concurrent` at once; the others wait
        for their turn without holding a thread, and past `WAITING_PER_CHECK` each, a 503.
        """
        cached = self.cached(token)
        if cached is not None:
            return cached
        self._take_attempt(client)
        if parse_token(token) is None:
            return None  # malformed: counted, nothing to check
        with self._pending_lock:
            busy = self._pending >= self._max_pending
            if not busy:
                self._pending += 1
        if busy:
            self._failures.give_back(client)  # the server was busy, the client did nothing wrong
            raise ApiProblem(503, "auth-busy", "Service unavailable",
                             "too many API key checks are waiting; retry in a second", headers={"Retry-After": "1"})
        try:
            key = await anyio.to_thread.run_sync(self._check, token, limiter=self._checks)
        except BaseException:
            self._failures.give_back(client)  # Neo4j down, a cancelled request: not a failed check
            raise
        finally:
            with self._pending_lock:
                self._pending -= 1
        if key is not None:
            self._failures.give_back(client)
        return key

    def _take_attempt(self, client: str) -> None:
        wait = self._failures.take(client)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise ApiProblem(429, "auth-rate-limited", "Too many failed authentications",
                             f"too many failed API key checks from {client} "
                             f"({self._failures.per_minute} a minute); retry in {seconds} s",
                             headers={"Retry-After": str(seconds)})

    def _check(self, token: str) -> ApiKey | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        # Hashed before the lookup: an unknown key id costs what a known one does.
        expected = self._keyed_hash(secret)
        records = self.gateway.rows(GET_KEY_FOR_AUTH, key_id=key_id)
        stored = records[0]["hash"] if records else None
        if not isinstance(stored, str) or not stored:
            return None
        legacy = stored.startswith(LEGACY_HASH_PREFIX)
        if legacy:
            matches = self._legacy_matches(stored, secret)
        else:
            matches = hmac.compare_digest(stored.encode(), expected.encode())
            if not matches:
                self._tell_other_secret(key_id, stored)
        key = _api_key(records[0]["key"])
        if not matches or key.revoked:
            return None
        used_at = _now()
        self._record_use(key_id, used_at, legacy_hash=stored if legacy else None, new_hash=expected)
        key = key.model_copy(update={"last_used_at": used_at})
        self._cache.put(_digest(token), key)
        return key

    def _keyed_hash(self, secret: str) -> str:
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    value = server_secret(self.settings)
                    self._secret_id = secret_id(value)
                    self._secret = value
        return keyed_hash(self._secret, secret)

    def _legacy_matches(self, stored_hash: str, secret: str) -> bool:
        """An argon2 hash from before #15: checked the old way, once per key, then replaced."""
        try:
            return self._legacy_hasher.verify(stored_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def _tell_other_secret(self, key_id: str, stored_hash: str) -> None:
        """A key hashed under another server secret fails here for every token: say so once per key,
        since a replica or `kgmem keys` run that does not share the secret looks like a lost key."""
        scheme, _, rest = stored_hash.partition(":")
        stored_id = rest.partition(":")[0]
        if scheme != HASH_SCHEME or stored_id == self._secret_id or key_id in self._told_other_secret:
            return
        self._told_other_secret.add(key_id)
        log.warning("API key %s was hashed under another server secret (id %s; this server's is %s), so it "
                    "cannot authenticate here: every replica and `kgmem keys` must share KGMEM_API_KEY_SECRET "
                    "or the secret file (docs/auth.md)", key_id, stored_id, self._secret_id)

    def _record_use(self, key_id: str, used_at: datetime, *, legacy_hash: str | None, new_hash: str) -> None:
        """last_used_at (once per cache TTL at most), and the keyed hash in place of an argon2 one.
        Best effort: a failure here must not turn a valid key away (an argon2 key is replaced next time)."""
        try:
            self.gateway.write(TOUCH_KEY, key_id=key_id, now=used_at)
            if legacy_hash is not None:
                self.gateway.write(REHASH_KEY, key_id=key_id, old=legacy_hash, new=new_hash)
                log.info("API key %s: its argon2 hash is replaced by a keyed hash", key_id)
        except KgmemError as exc:
            log.warning("could not record the use of API key %s: %s", key_id, exc)


# -- FastAPI ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    """Who is calling: their key, and the space the request acts on (None on routes without `{space}`)."""

    key: ApiKey
    space: str | None


def dev_principal(space: str | None) -> Principal:
    """The principal of every request while auth is disabled: all scopes, all spaces."""
    key = ApiKey(key_id="auth-disabled", name="KGMEM_AUTH_DISABLED (dev only)", scopes=list(Scope),
                 spaces=[ALL_SPACES], created_at=_now())
    return Principal(key=key, space=space)


bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer kgm_…`")


def _unauthorized(message: str, *, invalid: bool) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": challenge})


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits keys with `scope` on the route's `{space}`:
    401 without a valid, unrevoked Bearer key; 403 when the key lacks `scope`; 404 "no such space"
    when the key is not bound to the space (another tenant's space looks like a missing one);
    429 when the client's address has used up its failed checks (`KeyStore.admit`).

    It runs on the event loop: a cached key costs no thread, and an uncached one waits for a
    check without holding one, so bad tokens cannot take the thread pool the routes run in.

    Needs `request.app.state.key_store` (a KeyStore); `request.app.state.auth_disabled` true
    admits every request as an admin (the dev flag, Settings.auth_disabled).
    """
    scope = Scope(scope)

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    ) -> Principal:
        space = request.path_params.get("space")
        state = request.app.state
        if getattr(state, "auth_disabled", False) is True:
            return dev_principal(space)
        store: KeyStore | None = getattr(state, "key_store", None)
        if store is None:  # fail closed
            raise RuntimeError("app.state.key_store is not set: the app must create a KeyStore at start-up")
        if credentials is None:
            if request.headers.get("authorization"):
                raise _unauthorized("the Authorization header must be `Bearer <API key>`", invalid=True)
            raise _unauthorized("missing API key: send `Authorization: Bearer <API key>`", invalid=False)
        key = await store.admit(credentials.credentials, client_address(request.scope))
        if key is None:
            raise _unauthorized("invalid or revoked API key", invalid=True)
        if not key.has_scope(scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"this API key lacks the {scope.value!r} scope")
        if space is not None and not key.can_access(space):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no such space: {space!r}")
        return Principal(key=key, space=space)

    dependency.__name__ = f"require_{scope.value}"
    return dependency
