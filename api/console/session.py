"""The console's session: a signed, HttpOnly, SameSite=Strict cookie that names an API key, and CSRF tokens.

    sessions = Sessions(lambda: auth.server_secret(settings))
    session = sessions.read(request)                 # Session (maybe anonymous), never None
    sessions.write(request, response, session.signed_in(key.key_id))
    sessions.check_csrf(session, form_token)         # raises CsrfRejected on a missing or wrong token

The cookie holds `{key_id, csrf, expires}` and an HMAC-SHA-256 of it under a key derived from the
server secret that API keys are hashed under (auth.server_secret), so replicas that share that
secret share sessions, and nothing new needs configuring. It never holds the token: each page
looks the key up by id, so a revoked key ends its sessions at once. The stdlib's `hmac` signs it
(itsdangerous, which Starlette's SessionMiddleware needs, is not a dependency of kgmem).

Every visitor gets a session, signed in or not, so that the sign-in form carries a CSRF token too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from fastapi import Request, Response

COOKIE = "kgmem_console"
LIFETIME_S = 8 * 3600  # a working day; signing in again is one paste
CSRF_FIELD = "csrf_token"
_SIGNING_LABEL = b"kgmem console session v1"


class CsrfRejected(Exception):
    """A state-changing form came without the session's CSRF token."""


@dataclass(frozen=True)
class Session:
    csrf: str
    expires: int
    key_id: str | None = None

    def signed_in(self, key_id: str) -> Session:
        # A fresh CSRF token at sign-in: a token seen before it cannot be replayed after it.
        return Session(csrf=secrets.token_urlsafe(24), expires=int(time.time()) + LIFETIME_S, key_id=key_id)

    def signed_out(self) -> Session:
        return replace(self, key_id=None, csrf=secrets.token_urlsafe(24))


def new_session() -> Session:
    return Session(csrf=secrets.token_urlsafe(24), expires=int(time.time()) + LIFETIME_S)


class Sessions:
    """Reads and writes the session cookie (Secure too when the request came over HTTPS)."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret  # read at first use, as KeyStore does: the app starts even while it is unreadable
        self._key: bytes | None = None

    def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = hmac.new(self._secret(), _SIGNING_LABEL, hashlib.sha256).digest()
        return self._key

    def read(self, request: Request) -> Session:
        """The request's session, or a new anonymous one when the cookie is missing, forged or expired."""
        raw = request.cookies.get(COOKIE, "")
        payload, _, signature = raw.rpartition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return new_session()
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
            session = Session(csrf=str(data["csrf"]), expires=int(data["expires"]), key_id=data.get("key_id"))
        except (ValueError, KeyError, TypeError):
            return new_session()
        return session if session.expires > time.time() else new_session()

    def write(self, request: Request, response: Response, session: Session) -> None:
        body = {"csrf": session.csrf, "expires": session.expires, "key_id": session.key_id}
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
        response.set_cookie(COOKIE, f"{payload}.{self._sign(payload)}", max_age=LIFETIME_S, path="/",
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    @staticmethod
    def check_csrf(session: Session, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, session.csrf):
            raise CsrfRejected("the form's security token is missing or out of date; reload the page and try again")

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._signing_key(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
