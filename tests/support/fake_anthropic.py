"""A local server speaking Anthropic's documented Messages API: `POST /v1/messages` streamed as SSE
(`message_start`, `content_block_start` for text and `tool_use`, `content_block_delta` with `text_delta` /
`input_json_delta`, `content_block_stop`, `message_delta` with `stop_reason` and usage, `message_stop`),
`GET /v1/models`, and errors in the documented shape (`{"type": "error", "error": {"type", "message"}}`)
with their status codes: 429 with `retry-after`, 500 `api_error`, 529 `overloaded_error`.

Requests are checked against the documented rules a real server enforces (`max_tokens` required, the system
prompt top-level, the first message the user's, no empty text), so a malformed request fails here too.
Replies are derived from the request: "put me through to X" becomes a `transfer_call` tool use (after a short
sentence, its input split over two deltas) for any name X, in the directory or not; anything else is answered
in sentences that quote the caller.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from aiohttp import web

from tests.support.fake_servers import RETRY_AFTER_S, FakeServer

STALLED_TEXT = "Let me just check the diary and"  # no sentence end: a consumer must not speak it yet
TRANSFER = re.compile(r"put me through to (?P<name>[\w .'-]+?)[.?!]*$", re.IGNORECASE)


class Failure(StrEnum):
    NONE = "none"
    OVERLOADED = "overloaded"  # 529 overloaded_error
    SERVER = "server"  # 500 api_error
    RATE_LIMITED = "rate_limited"  # 429 rate_limit_error with retry-after
    HANG = "hang"  # accepts, then sends nothing
    STALL = "stall"  # starts the reply, then sends nothing more
    ERROR_EVENT = "error_event"  # a 200 stream that ends in an `error` event (overloaded mid-reply)


_ERRORS = {
    Failure.OVERLOADED: (529, "overloaded_error", "Overloaded"),
    Failure.SERVER: (500, "api_error", "Internal server error"),
    Failure.RATE_LIMITED: (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit"),
}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload | {'type': name})}\n\n".encode()


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    return web.json_response(body, status=status, headers=headers)


def _request_error(body: dict[str, Any]) -> str | None:
    """What a real server would answer 400 `invalid_request_error` for, or None."""
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    if any(m.get("role") == "system" for m in messages):
        return 'messages: Unexpected role "system". Use the top-level `system` parameter instead.'
    if any(isinstance(m.get("content"), str) and not m["content"].strip() for m in messages):
        return "messages: text content blocks must be non-empty"
    for tool in body.get("tools") or []:
        if not {"name", "input_schema"} <= tool.keys():
            return "tools: each tool needs name and input_schema"
    return None


class FakeAnthropic(FakeServer):
    """`key`: the API key a request must carry, in `x-api-key` (the documented header) or as a bearer token
    (what the 2.x SDK sends), else 401 `authentication_error`."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.failure = Failure.NONE
        self._key = key
        # A test's own model: the request's system prompt → the reply's text (no tool use), in its place.
        self.script: Callable[[str], str] | None = None

    def _authenticated(self, request: web.Request) -> bool:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return self._key in (request.headers.get("x-api-key"), bearer)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.models)
        return app

    async def _failed(self) -> web.Response | None:
        if self.failure is Failure.HANG:
            await self.hang()
            return _error(503, "api_error", "server stopped")
        if self.failure in _ERRORS:
            status, kind, message = _ERRORS[self.failure]
            headers = {"retry-after": str(RETRY_AFTER_S)} if self.failure is Failure.RATE_LIMITED else None
            return _error(status, kind, message, headers)
        return None

    async def models(self, request: web.Request) -> web.Response:
        self.requests.append({"route": "models", "headers": dict(request.headers)})
        if not self._authenticated(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        failed = await self._failed()
        if failed is not None:
            return failed
        model = {"type": "model", "id": "claude-fake", "display_name": "Fake", "created_at": "2026-01-01T00:00:00Z"}
        return web.json_response(
            {"data": [model], "has_more": False, "first_id": "claude-fake", "last_id": "claude-fake"}
        )

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"route": "messages", "body": body, "headers": dict(request.headers)})
        if not self._authenticated(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        failed = await self._failed()
        if failed is not None:
            return failed
        problem = _request_error(body)
        if problem is not None:
            return _error(400, "invalid_request_error", problem)
        if body.get("stream") is not True:
            return _error(400, "invalid_request_error", "this fake only streams")

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        last = body["messages"][-1]
        said = last["content"] if isinstance(last["content"], str) else ""
        words = len(str(body.get("system", "")).split()) + sum(len(str(m["content"]).split()) for m in body["messages"])
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": words, "output_tokens": 1},
        }
        await response.write(_event("message_start", {"message": message}))
        await response.write(_event("ping", {}))
        if self.failure in (Failure.STALL, Failure.ERROR_EVENT):
            await response.write(
                _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            )
            delta = {"index": 0, "delta": {"type": "text_delta", "text": STALLED_TEXT}}
            await response.write(_event("content_block_delta", delta))
            if self.failure is Failure.STALL:
                await self.hang()
            else:
                await response.write(_event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
            return response
        wanted = TRANSFER.search(said.strip())
        texts = ["Certainly, ", "one moment."] if wanted else self._sentences(said)
        if self.script is not None:
            wanted, texts = None, [w + " " for w in self.script(str(body.get("system", ""))).split(" ")]
        await response.write(_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        for text in texts:
            delta = {"index": 0, "delta": {"type": "text_delta", "text": text}}
            await response.write(_event("content_block_delta", delta))
            await asyncio.sleep(0.005)
        await response.write(_event("content_block_stop", {"index": 0}))
        stop_reason = "end_turn"
        if wanted:
            arguments = json.dumps({"target": wanted["name"].strip()})
            half = len(arguments) // 2
            block = {"type": "tool_use", "id": "toolu_fake1", "name": "transfer_call", "input": {}}
            await response.write(_event("content_block_start", {"index": 1, "content_block": block}))
            for part in (arguments[:half], arguments[half:]):
                delta = {"index": 1, "delta": {"type": "input_json_delta", "partial_json": part}}
                await response.write(_event("content_block_delta", delta))
            await response.write(_event("content_block_stop", {"index": 1}))
            stop_reason = "tool_use"
        usage = {"output_tokens": len(texts) + (5 if wanted else 0)}
        await response.write(
            _event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage})
        )
        await response.write(_event("message_stop", {}))
        return response

    @staticmethod
    def _sentences(said: str) -> list[str]:
        """Two sentences, each streamed in pieces, so a consumer must find the sentence ends itself."""
        quoted = said.strip().rstrip(".?!")
        return ["Claude ", "here. ", "You said: ", f"{quoted}."]
