"""The REST API served for real: uvicorn in a thread on a free port, on the suite's Neo4j and a fresh Chroma.

The only fake is Anthropic's HTTP edge, so that mem0's `infer=true` answers: Claude
"extracts" nothing from whatever it is shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fakes import FakeAnthropicTransport

from api.app import create_app
from api.auth import KeyStore, Scope
from api.client import KgmemClient
from graph import Gateway, Neo4jTarget, Settings
from graph.neo4j_server.server import free_port

ALL_SCOPES = [s.value for s in Scope]


class LiveApi:
    def __init__(self, app, base_url: str, gateway: Gateway, settings: Settings) -> None:
        self.app = app
        self.base_url = base_url
        self.gateway = gateway
        self.settings = settings
        self.keys = KeyStore(gateway)
        self.key_ids: list[str] = []

    def token(self, spaces: list[str], scopes: list[str] | None = None, name: str = "api test") -> str:
        key, token = self.keys.create(name, scopes or ALL_SCOPES, spaces)
        self.key_ids.append(key.key_id)
        return token

    def client(self, space: str, scopes: list[str] | None = None, *, token: str | None = None) -> KgmemClient:
        return KgmemClient(self.base_url, token or self.token([space], scopes), space)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=120)

    def delete_keys(self) -> None:
        self.gateway.write("MATCH (k:ApiKey) WHERE k.key_id IN $ids DETACH DELETE k", ids=self.key_ids)


def api_settings(target: Neo4jTarget, home: Path, **overrides) -> Settings:
    return Settings(home=home, neo4j_uri=target.uri, neo4j_username=target.username, neo4j_password=target.password,
                    neo4j_database=target.database, chroma_path=home / "chroma", **overrides)


def fake_llm() -> FakeAnthropicTransport:
    fake = FakeAnthropicTransport()
    fake.text('{"memory": []}', times=100_000)  # mem0's extraction finds no fact in anything
    return fake


@contextmanager
def serve(settings: Settings, gateway: Gateway, embedder, *, timeout: float = 180) -> Iterator[LiveApi]:
    app = create_app(settings, embedder=embedder, anthropic_client=fake_llm().client())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="live-api", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the live API did not become ready")
        time.sleep(0.3)
    live = LiveApi(app, base_url, gateway, settings)
    try:
        yield live
    finally:
        live.delete_keys()
        server.should_exit = True
        thread.join(timeout=60)
