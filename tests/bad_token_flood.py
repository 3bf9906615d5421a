"""Well-formed bad API tokens from many clients at once, as an attacker sends them.

    python bad_token_flood.py BASE_URL PATH KEY_ID CLIENTS ADDRESSES SECONDS

Runs in a process of its own, so that its work does not slow the server under test. The clients
send from ADDRESSES loopback addresses (127.0.1.N, a few clients behind each), each one request
after another, each with a fresh token of kgmem's form: odd clients name KEY_ID (a real key) with
a wrong secret, even ones unknown key ids. Prints `flooding` once the clients have been sending for a second, then the answers counted
by status, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import sys
import time
from collections import Counter

import httpx

_ID_ALPHABET = string.ascii_letters + string.digits


def bad_token(key_id: str | None) -> str:
    key_id = key_id or "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    return f"kgm_{key_id}_{secrets.token_urlsafe(32)}"


async def attacker(n: int, address: str, base_url: str, path: str, key_id: str, until: float,
                   counts: Counter) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60) as client:
        while time.monotonic() < until:
            token = bad_token(key_id if n % 2 else None)
            try:
                response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                counts[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                counts[type(exc).__name__] += 1


async def flood(base_url: str, path: str, key_id: str, clients: int, addresses: int, seconds: float) -> Counter:
    counts: Counter = Counter()
    until = time.monotonic() + seconds
    tasks = [asyncio.create_task(attacker(n, f"127.0.1.{n % addresses + 1}", base_url, path, key_id, until, counts))
             for n in range(clients)]
    await asyncio.sleep(1.0)
    print("flooding", flush=True)
    await asyncio.gather(*tasks)
    return counts


def main() -> None:
    base_url, path, key_id, clients, addresses, seconds = sys.argv[1:7]
    counts = asyncio.run(flood(base_url, path, key_id, int(clients), int(addresses), float(seconds)))
    print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main()
