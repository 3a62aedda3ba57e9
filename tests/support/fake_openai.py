"""A local OpenAI-compatible server: chat completions (SSE with `tool_calls` deltas and a usage chunk),
`/v1/audio/speech` (raw 24 kHz PCM from Piper), `/v1/audio/transcriptions` (Whisper on the upload),
`/v1/embeddings` (real sentence vectors from the given `embed`, e.g. MiniLM) and `/v1/models`. The same
routes under `/openai/v1` make it a Groq endpoint (Groq sends `x_groq.usage`).

Replies are derived from the request: a directory name the caller said becomes a `transfer_call` tool call
(arguments split over two deltas, as real servers stream them); anything else is answered in text that
quotes the caller, so a test sees its own words come back through the SDK.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from secretary.speech.audio import Pcm, parse_wav
from tests.support.fake_servers import FakeServer, Fault, abort

SPEECH_RATE = 24000
STALLED_TEXT = "Let me check that for you and"  # no sentence end: a consumer must not speak it yet


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


class FakeOpenAi(FakeServer):
    def __init__(
        self,
        say: Callable[[str, int], Pcm],
        transcribe: Callable[[Pcm], str],
        embed: Callable[[list[str]], list[list[float]]] | None = None,
    ) -> None:
        super().__init__()
        self._say = say
        self._transcribe = transcribe
        self._embed = embed
        # A test's own model: the chat messages → the reply's text (no tool call), in place of the derived one.
        self.script: Callable[[list[dict[str, Any]]], str] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        for prefix in ("/v1", "/openai/v1"):
            app.router.add_post(prefix + "/chat/completions", self.chat)
            app.router.add_post(prefix + "/audio/speech", self.speech)
            app.router.add_post(prefix + "/audio/transcriptions", self.transcriptions)
            app.router.add_get(prefix + "/models", self.models)
            app.router.add_post(prefix + "/embeddings", self.embeddings)
        return app

    # -- shared fault handling ---------------------------------------------------------------------------

    async def _before_headers(self) -> web.Response | None:
        error = self.error_response()
        if error is not None:
            return error
        if self.fault is Fault.HANG:
            await self.hang()
            return web.json_response({"error": {"message": "server stopped"}}, status=503)
        return None

    async def models(self, request: web.Request) -> web.Response:
        self.requests.append({"route": "models"})
        early = await self._before_headers()
        if early is not None:
            return early
        return web.json_response(
            {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]}
        )

    # -- chat completions ---------------------------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        groq = request.path.startswith("/openai/")
        self.requests.append({"route": "chat", "body": body, "auth": request.headers.get("Authorization", "")})
        early = await self._before_headers()
        if early is not None:
            return early
        if body.get("n", 1) != 1 or (groq and body.get("logprobs")):
            return web.json_response({"error": {"message": "n must be 1"}}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        created = int(time.time())
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": body["model"]}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse(base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        if self.fault in (Fault.STALL, Fault.DISCONNECT):
            await response.write(chunk({"role": "assistant", "content": STALLED_TEXT}))
            if self.fault is Fault.STALL:
                await self.hang()
            else:
                await abort(request)
            return response
        if self.fault is Fault.MALFORMED:
            await response.write(b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "Hel\n\n')
            await response.write(b"data: [DONE]\n\n")
            return response

        said = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        pieces, tool = self._answer(said, body.get("tools") or [])
        if self.script is not None:
            pieces, tool = [w + " " for w in self.script(body["messages"]).split(" ")], None
        await response.write(chunk({"role": "assistant", "content": ""}))
        for piece in pieces:
            await response.write(chunk({"content": piece}))
            await asyncio.sleep(0.005)
        finish = "stop"
        if tool is not None:
            name, arguments = tool
            half = len(arguments) // 2
            first = {"index": 0, "id": "call_fake1", "type": "function", "function": {"name": name, "arguments": ""}}
            await response.write(chunk({"tool_calls": [first]}))
            for part in (arguments[:half], arguments[half:]):
                await response.write(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
            finish = "tool_calls"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces) + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        last = base | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        if groq:
            last["x_groq"] = {"id": "req_fake", "usage": usage}
        await response.write(_sse(last))
        if not groq and (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_sse(base | {"choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    @staticmethod
    def _answer(said: str, tools: list[dict[str, Any]]) -> tuple[list[str], tuple[str, str] | None]:
        names: list[str] = []
        for tool in tools:
            function = tool.get("function", {})
            if function.get("name") == "transfer_call":
                names = function["parameters"]["properties"]["target"].get("enum", [])
        lowered = said.casefold()
        for name in names:
            if name != "operator" and re.search(rf"\b{re.escape(name.casefold())}\b", lowered):
                return ["Certainly, ", "one moment."], ("transfer_call", json.dumps({"target": name}))
        words = f"Cloud model here. You said: {said.strip().rstrip('.?!')}.".split(" ")
        return [w + " " for w in words[:-1]] + [words[-1]], None

    # -- speech -----------------------------------------------------------------------------------------

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"route": "speech", "body": body})
        early = await self._before_headers()
        if early is not None:
            return early
        if self.fault is Fault.MALFORMED:
            return web.Response(body=b'{"error": {"message": "bro', content_type="application/json")
        if body.get("response_format") != "pcm":
            return web.json_response({"error": {"message": "this fake speaks pcm only"}}, status=400)
        pcm = await asyncio.to_thread(self._say, body["input"], SPEECH_RATE)
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        step = SPEECH_RATE // 10 * 2  # 100 ms
        for index, offset in enumerate(range(0, len(pcm.data), step)):
            await response.write(pcm.data[offset : offset + step])
            await asyncio.sleep(0.002)
            if index == 2 and self.fault is Fault.STALL:
                await self.hang()
                return response
            if index == 2 and self.fault is Fault.DISCONNECT:
                await abort(request)
                return response
        await response.write_eof()
        return response

    # -- transcription ----------------------------------------------------------------------------------

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form.get("file")
        fields = {k: str(v) for k, v in form.items() if k != "file"}
        self.requests.append({"route": "transcriptions", "fields": fields})
        early = await self._before_headers()
        if early is not None:
            return early
        if not isinstance(upload, web.FileField):
            return web.json_response({"error": {"message": "file is required"}}, status=400)
        audio = parse_wav(upload.file.read())
        text = await asyncio.to_thread(self._transcribe, audio)
        payload = json.dumps({"text": text, "usage": {"type": "duration", "seconds": round(audio.duration_s)}})
        if self.fault is Fault.MALFORMED:
            return web.Response(body=payload[: len(payload) // 2].encode(), content_type="application/json")
        if self.fault in (Fault.STALL, Fault.DISCONNECT):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[:10].encode())
            if self.fault is Fault.STALL:
                await self.hang()
            else:
                await abort(request)
            return response
        return web.Response(body=payload.encode(), content_type="application/json")

    # -- embeddings ---------------------------------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.requests.append({"route": "embeddings", "model": body.get("model"), "input": texts})
        early = await self._before_headers()
        if early is not None:
            return early
        if self._embed is None:
            return web.json_response({"error": {"message": "no embeddings here"}}, status=404)
        vectors = await asyncio.to_thread(self._embed, texts)
        tokens = sum(len(t.split()) for t in texts)
        payload = json.dumps(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
        return await json_faults(request, self, payload)


async def json_faults(request: web.Request, server: FakeServer, payload: str) -> web.StreamResponse:
    """A JSON body, broken the way the server's fault says (malformed, stalled or cut mid-body)."""
    if server.fault is Fault.MALFORMED:
        return web.Response(body=payload[: len(payload) // 2].encode(), content_type="application/json")
    if server.fault in (Fault.STALL, Fault.DISCONNECT):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(payload)
        await response.prepare(request)
        await response.write(payload[:10].encode())
        if server.fault is Fault.STALL:
            await server.hang()
        else:
            await abort(request)
        return response
    return web.Response(body=payload.encode(), content_type="application/json")
