"""The one allowed fake: the HTTP edge to Anthropic.

`FakeAnthropicTransport` answers the Messages API from a script of responses, and
records every request it is sent. `client()` gives a real `anthropic.Anthropic`
whose HTTP client uses it, so the SDK's request building, retries, response
parsing and error classes all run for real; only the network is replaced.

    fake = FakeAnthropicTransport()
    fake.tool_use({"entities": []}, input_tokens=900, output_tokens=40)
    fake.error(529, "overloaded_error", "Overloaded")
    client = fake.client(max_retries=1)
    ...
    fake.requests[0].body["tool_choice"]

The installed SDK (2.x) builds on `httpx2`, not `httpx`, and checks the type of
`http_client`; hence `httpx2.MockTransport`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

# A scripted reply: builds the response for the request it answers (or raises, like a dead network).
Reply = Callable[[httpx2.Request, dict[str, Any]], httpx2.Response]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])


class FakeAnthropicTransport:
    """A scripted Anthropic API. Replies are used in order, one per HTTP request (SDK retries included)."""

    def __init__(self, *, model: str | None = None) -> None:
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self.requests: list[RecordedRequest] = []
        self.model = model  # the model named in responses; None echoes the request's

    # -- scripting ------------------------------------------------------------------------
    def reply(self, reply: Reply, *, times: int = 1) -> FakeAnthropicTransport:
        with self._lock:
            self._replies.extend([reply] * times)
        return self

    def message(self, content: list[dict[str, Any]], *, stop_reason: str = "end_turn", input_tokens: int = 100,
                output_tokens: int = 50, times: int = 1) -> FakeAnthropicTransport:
        """A 200 Messages API response with these content blocks (tool_use ids are filled in when missing)."""

        def build(request: httpx2.Request, body: dict[str, Any]) -> httpx2.Response:
            n = next(self._ids)
            blocks = [
                {**block, "id": block.get("id") or f"toolu_fake_{n}_{i}"} if block.get("type") == "tool_use" else block
                for i, block in enumerate(content)
            ]
            return httpx2.Response(200, headers={"request-id": f"req_fake_{n}"}, json={
                "id": f"msg_fake_{n}",
                "type": "message",
                "role": "assistant",
                "model": self.model or body.get("model", "claude-sonnet-4-5"),
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            })

        return self.reply(build, times=times)

    def tool_use(self, tool_input: dict[str, Any], *, name: str = "record_extraction", stop_reason: str = "tool_use",
                 input_tokens: int = 100, output_tokens: int = 50, times: int = 1) -> FakeAnthropicTransport:
        """Claude calling `name` with `tool_input`."""
        block = {"type": "tool_use", "name": name, "input": tool_input}
        return self.message([block], stop_reason=stop_reason, input_tokens=input_tokens,
                            output_tokens=output_tokens, times=times)

    def text(self, text: str, *, stop_reason: str = "end_turn", input_tokens: int = 100, output_tokens: int = 50,
             times: int = 1) -> FakeAnthropicTransport:
        """Claude answering in prose instead of calling a tool."""
        return self.message([{"type": "text", "text": text}], stop_reason=stop_reason,
                            input_tokens=input_tokens, output_tokens=output_tokens, times=times)

    def raw(self, status: int, body: Any, *, headers: dict[str, str] | None = None, times: int = 1) -> FakeAnthropicTransport:
        """Any status and JSON body, as is."""
        return self.reply(lambda request, _: httpx2.Response(status, json=body, headers=headers or {}), times=times)

    def error(self, status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None,
              times: int = 1) -> FakeAnthropicTransport:
        """An API error in Anthropic's error shape. It asks for a 1 ms wait (`retry-after-ms`, which the SDK
        honours), so the SDK's real retry path runs without its half-second backoff."""
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        return self.raw(status, body, headers={"retry-after-ms": "1", **(headers or {})}, times=times)

    def connection_error(self, *, times: int = 1) -> FakeAnthropicTransport:
        """The connection fails before any response."""

        def fail(request: httpx2.Request, _: dict[str, Any]) -> httpx2.Response:
            raise httpx2.ConnectError("connection refused (scripted)", request=request)

        return self.reply(fail, times=times)

    # -- the transport ----------------------------------------------------------------------
    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else {}
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.url.path, dict(request.headers), body))
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            # A 4xx the SDK does not retry, so a test that runs out of script fails loudly with this text.
            return httpx2.Response(418, json={"type": "error", "error": {
                "type": "invalid_request_error", "message": "FakeAnthropicTransport: no scripted response left"}})
        return reply(request, body)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._replies)

    def client(self, *, api_key: str = "test-key", max_retries: int = 0, **options: Any) -> anthropic.Anthropic:
        """A real SDK client whose HTTP goes to this fake."""
        http = httpx2.Client(transport=httpx2.MockTransport(self.handle))
        return anthropic.Anthropic(api_key=api_key, max_retries=max_retries, http_client=http, **options)
