"""The console's session cookie: signed, expiring, never trusted when altered; CSRF tokens bound to it."""

from __future__ import annotations

import time

import pytest
from fastapi import Response
from starlette.requests import Request

from api.console.session import COOKIE, CsrfRejected, Session, Sessions, new_session

SECRET = b"s" * 40


def request_with(cookie: str | None, scheme: str = "http") -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "scheme": scheme,
                    "server": ("testserver", 80), "query_string": b""})


def cookie_of(sessions: Sessions, session: Session, scheme: str = "http") -> tuple[str, str]:
    response = Response()
    sessions.write(request_with(None, scheme), response, session)
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1], header


def test_a_written_session_reads_back_with_its_key_and_csrf_token():
    sessions = Sessions(lambda: SECRET)
    session = new_session().signed_in("abcdefghijkl")
    value, header = cookie_of(sessions, session)
    assert sessions.read(request_with(value)) == session
    assert "HttpOnly" in header and "SameSite=strict" in header and "Secure" not in header
    assert "Secure" in cookie_of(sessions, session, scheme="https")[1]


def test_an_altered_forged_or_foreign_cookie_is_an_anonymous_session():
    sessions = Sessions(lambda: SECRET)
    value, _ = cookie_of(sessions, new_session().signed_in("abcdefghijkl"))
    payload, signature = value.rsplit(".", 1)
    other_key = cookie_of(Sessions(lambda: b"t" * 40), new_session().signed_in("abcdefghijkl"))[0]
    for bad in (f"{payload}x.{signature}", f"{payload}.{signature[:-2]}", other_key, "", "garbage", "a.b.c"):
        assert sessions.read(request_with(bad)).key_id is None, bad


def test_an_expired_session_is_anonymous():
    sessions = Sessions(lambda: SECRET)
    expired = Session(csrf="token", expires=int(time.time()) - 1, key_id="abcdefghijkl")
    assert sessions.read(request_with(cookie_of(sessions, expired)[0])).key_id is None


def test_forms_need_the_sessions_own_csrf_token_and_signing_in_or_out_changes_it():
    session = new_session()
    Sessions.check_csrf(session, session.csrf)
    for wrong in (None, "", session.csrf + "x", new_session().csrf):
        with pytest.raises(CsrfRejected):
            Sessions.check_csrf(session, wrong)
    signed_in = session.signed_in("abcdefghijkl")
    assert signed_in.csrf != session.csrf and signed_in.signed_out().csrf != signed_in.csrf
    assert signed_in.signed_out().key_id is None
