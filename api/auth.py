"""API keys: Bearer tokens with scopes, bound to spaces, stored hashed (argon2) in Neo4j.

A token reads `kgm_<key_id>_<secret>`: `key_id` (12 letters and digits) finds the key, the
secret (32 random bytes, url-safe base64) proves it. Neo4j keeps only an argon2 hash of the
secret, on an `(:ApiKey)` node that belongs to no space (keys are not tenant data):

    (:ApiKey {key_id, hash, name, scopes, spaces, created_at, last_used_at, revoked_at})

    store = KeyStore(gateway)
    key, token = store.create("ci", [Scope.READ], ["acme"])   # the token is shown once
    store.authenticate(token)                                 # ApiKey, or None
    store.revoke(key.key_id)

FastAPI routes guard themselves with `require(scope)`; the app must set
`app.state.key_store` (a KeyStore) and `app.state.auth_disabled` (the explicit dev flag
`KGMEM_AUTH_DISABLED`, the setting `auth_disabled`). See docs/auth.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, model_validator

from graph.errors import Conflict, InvalidInput, KgmemError
from graph.gateway import Gateway
from graph.store import check_space

log = logging.getLogger(__name__)

TOKEN_PREFIX = "kgm"
KEY_ID_LENGTH = 12
SECRET_BYTES = 32
ALL_SPACES = "*"
DEFAULT_CACHE_TTL_S = 60.0
DEFAULT_CACHE_SIZE = 1024
NAME_MAX_LENGTH = 200

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

    `authenticate` caches successful verifications for `cache_ttl_s` (argon2 is slow on
    purpose). `revoke` drops the key from this instance's cache at once; other replicas,
    with caches of their own, stop accepting a revoked key within `cache_ttl_s`.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        cache_size: int = DEFAULT_CACHE_SIZE,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.cache_ttl_s = cache_ttl_s
        self._hasher = hasher or PasswordHasher()
        self._cache = _VerifiedCache(cache_size, cache_ttl_s, clock)
        self._lock = threading.Lock()
        self._schema_ready = False
        self._dummy_hash: str | None = None

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
        hashed = self._hasher.hash(secret)
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

        Unknown key ids are verified against a dummy hash, so the time taken does not tell an
        attacker which key ids exist.
        """
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        digest = _digest(token)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        records = self.gateway.rows(GET_KEY_FOR_AUTH, key_id=key_id)
        if not records or not records[0]["hash"]:
            self._verify(self._dummy(), secret)
            return None
        stored_hash = records[0]["hash"]
        key = _api_key(records[0]["key"])
        if not self._verify(stored_hash, secret) or key.revoked:
            return None
        used_at = _now()
        self._touch(key_id, stored_hash, secret, used_at)
        key = key.model_copy(update={"last_used_at": used_at})
        self._cache.put(digest, key)
        return key

    def _verify(self, stored_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(new_secret())
        return self._dummy_hash

    def _touch(self, key_id: str, stored_hash: str, secret: str, used_at: datetime) -> None:
        """last_used_at (once per cache TTL at most), and a new hash when the hasher's parameters changed.
        Best effort: a failure here must not turn a valid key away."""
        try:
            self.gateway.write(TOUCH_KEY, key_id=key_id, now=used_at)
            if self._hasher.check_needs_rehash(stored_hash):
                self.gateway.write(REHASH_KEY, key_id=key_id, old=stored_hash, new=self._hasher.hash(secret))
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


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that admits keys with `scope` on the route's `{space}`:
    401 without a valid, unrevoked Bearer key; 403 when the key lacks `scope`; 404 "no such space"
    when the key is not bound to the space (another tenant's space looks like a missing one).

    Needs `request.app.state.key_store` (a KeyStore); `request.app.state.auth_disabled` true
    admits every request as an admin (the dev flag, Settings.auth_disabled).
    """
    scope = Scope(scope)

    def dependency(
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
        key = store.authenticate(credentials.credentials)
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
