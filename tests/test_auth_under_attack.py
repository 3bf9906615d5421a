"""A flood of bad API tokens (#15): the server keeps answering its real clients.

40 clients, five behind each of eight addresses, send well-formed tokens with wrong secrets as fast as
the server answers them, while a normal client from another address keeps working: its requests,
with a key it has used before and with keys it uses for the first time, and /healthz, are all
answered, each within a bound. The attackers get 401, then 429 once their address has used up its
failed attempts, and the server (uvicorn in this process) does not grow by a memory-hard hash per
bad token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from api.auth import parse_token

ATTACKERS = 40
ATTACKER_ADDRESSES = 8
FLOOD_S = 12.0
ANSWER_BOUND_S = 5.0  # each of the normal client's requests is answered within this, flood or not
GROWTH_BOUND = 512 * 1024 * 1024  # 40 argon2id checks at once (64 MiB each) held 2.5 GiB
FLOOD_SCRIPT = Path(__file__).with_name("bad_token_flood.py")


def normal_client(api) -> httpx.Client:
    """A client from 127.0.0.2: not one of the attackers' addresses."""
    return httpx.Client(base_url=api.base_url, transport=httpx.HTTPTransport(local_address="127.0.0.2"),
                        timeout=60)


def timed(http: httpx.Client, what: str, path: str, token: str | None = None) -> tuple[str, int, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    status = http.get(path, headers=headers).status_code
    return what, status, time.monotonic() - started


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@contextmanager
def peak_growth() -> Iterator[list[int]]:
    """How far this process's resident memory rose above where it was, sampled every 20 ms."""
    baseline = resident_bytes()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], resident_bytes() - baseline)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def test_a_normal_client_keeps_working_through_a_flood_of_bad_tokens(live_api, space):
    """The suite's live API (uvicorn, its per-key rate limit off) with the default limit on failed
    authentications per address."""
    entities = f"/v1/spaces/{space}/entities"
    token = live_api.token([space], ["read"], name="normal client")
    with normal_client(live_api) as http:
        assert timed(http, "warm-up", entities, token)[1] == 200

        flood = subprocess.Popen(
            [sys.executable, str(FLOOD_SCRIPT), live_api.base_url, entities, parse_token(token)[0],
             str(ATTACKERS), str(ATTACKER_ADDRESSES), str(FLOOD_S)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            with peak_growth() as growth:
                assert flood.stdout.readline().strip() == "flooding", flood.stderr.read()
                answers = []
                while flood.poll() is None:
                    answers.append(timed(http, "known key", entities, token))
                    answers.append(timed(http, "healthz", "/healthz"))
                    fresh = live_api.token([space], ["read"], name="first use under attack")
                    answers.append(timed(http, "new key", entities, fresh))
                out, err = flood.communicate(timeout=120)
        finally:
            if flood.poll() is None:
                flood.kill()
                flood.wait()

    assert flood.returncode == 0, err
    attacks = json.loads(out.strip().splitlines()[-1])
    assert set(attacks) <= {"401", "429"}, attacks  # refused, never a 5xx or a hang
    assert attacks.get("429", 0) > 0, attacks  # the per-address limit engaged
    assert len({what for what, _, _ in answers}) == 3, answers  # each kind was tried during the flood
    assert [a for a in answers if a[1] != 200] == []
    assert [a for a in answers if a[2] > ANSWER_BOUND_S] == []
    assert growth[0] < GROWTH_BOUND, f"the server grew by {growth[0] / 2**20:.0f} MiB under the flood"
