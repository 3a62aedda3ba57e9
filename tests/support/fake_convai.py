"""A local ElevenLabs Conversational AI endpoint: `GET /v1/convai/conversation/get-signed-url?agent_id=…`
(key in `xi-api-key`) and the `/v1/convai/conversation` WebSocket it signs.

The socket speaks the documented protocol: it waits for `conversation_initiation_client_data`, answers
`conversation_initiation_metadata` with the agent's audio formats (`formats`, e.g. `ulaw_8000` or
`pcm_16000`), says the `first_message` override (`agent_response` then `audio` events with a per-reply
`event_id`, real Piper audio), takes `user_audio_chunk`s, hears the caller with an energy VAD, sends
`user_transcript` (real Whisper), answers through the policy of `speech_to_speech` (a client tool call
waits for its `client_tool_result`, then the agent says the result's `say`), sends `interruption` when the
caller speaks over a reply, and pings every second (counting the pongs).

Faults: 500 / 429 at the signed URL; `hang` accepts the socket and never speaks; `disconnect` closes it (1011)
as the caller starts speaking; `malformed` answers the caller's first turn with broken JSON; `stall` starts
that answer and goes quiet for good.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from secretary.speech.audio import Pcm, ulaw_decode, ulaw_encode
from tests.support.fake_servers import FakeServer, Fault
from tests.support.speech_to_speech import CallerEars, CallTool, Policy, Say, answer, chunks, spoken

AGENT = "agent_local_0001"


class FakeConvai(FakeServer):
    def __init__(
        self,
        say: Callable[[str, int], Pcm],
        transcribe: Callable[[Pcm], str],
        api_key: str,
        policy: Policy = answer,
    ) -> None:
        super().__init__()
        self.policy = policy
        self._say = say
        self._transcribe = transcribe
        self._key = api_key
        self.formats = ("pcm_16000", "pcm_16000")  # user_input_audio_format, agent_output_audio_format
        self.initiations: list[dict[str, Any]] = []
        self.tool_results: list[dict[str, Any]] = []
        self.transcripts: list[str] = []
        self.pongs = 0
        self.audio_chunks = 0
        self.reply_delay_s = 0.0  # a slow model: this long before each answer to the caller
        self.failed_at: float | None = None  # loop time a mid-call fault fired (for the benchmark)
        self._signatures: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/convai/conversation/get-signed-url", self.signed_url)
        app.router.add_get("/v1/convai/conversation", self.conversation)
        return app

    async def signed_url(self, request: web.Request) -> web.Response:
        self.requests.append({"route": "signed_url", "query": dict(request.query)})
        if request.headers.get("xi-api-key") != self._key:
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        error = self.error_response()
        if error is not None:
            return error
        signature = uuid.uuid4().hex
        self._signatures.add(signature)
        host = request.host
        agent = request.query.get("agent_id", "")
        return web.json_response(
            {"signed_url": f"ws://{host}/v1/convai/conversation?agent_id={agent}&conversation_signature={signature}"}
        )

    async def conversation(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"route": "conversation", "query": dict(request.query)})
        if request.query.get("conversation_signature") not in self._signatures:
            return web.json_response({"detail": "invalid signature"}, status=403)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if self.fault is Fault.HANG:
            await self.hang()
            return ws
        await _Conversation(self, ws).run()
        return ws


class _Conversation:
    def __init__(self, server: FakeConvai, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self.fault = server.fault
        self.in_format, self.out_format = server.formats
        self.in_rate = int(self.in_format.split("_")[1])
        self.out_rate = int(self.out_format.split("_")[1])
        self.ears = CallerEars(self.in_rate)
        self.event_id = 0
        self.response: asyncio.Task[None] | None = None
        self.tool_result: asyncio.Future[dict[str, Any]] | None = None
        self.turns = 0
        self.broken = False
        self.speaking_until = 0.0  # when the reply's audio ends on the caller's side (sent faster than real time)

    def talking(self) -> bool:
        return asyncio.get_running_loop().time() < self.speaking_until

    async def run(self) -> None:
        first = await self.ws.receive()
        if first.type != WSMsgType.TEXT:
            return
        initiation = json.loads(first.data)
        self.server.initiations.append(initiation)
        await self.send({"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": {
            "conversation_id": "conv_" + uuid.uuid4().hex[:12], "agent_output_audio_format": self.out_format,
            "user_input_audio_format": self.in_format}})  # fmt: skip
        override = initiation.get("conversation_config_override") or {}
        greeting = (override.get("agent") or {}).get("first_message") or "Hello, how can I help?"
        self.start(Say(greeting))
        pinger = asyncio.create_task(self.ping())
        try:
            async for message in self.ws:
                if message.type != WSMsgType.TEXT or self.broken:
                    continue
                event = json.loads(message.data)
                if "user_audio_chunk" in event:
                    await self.audio(base64.b64decode(event["user_audio_chunk"]))
                elif event.get("type") == "pong":
                    self.server.pongs += 1
                elif event.get("type") == "client_tool_result":
                    self.server.tool_results.append(event)
                    if self.tool_result is not None and not self.tool_result.done():
                        self.tool_result.set_result(event)
                if self.ws.closed:
                    return
        finally:
            pinger.cancel()
            if self.response is not None:
                self.response.cancel()

    async def send(self, payload: dict[str, Any]) -> None:
        if not self.ws.closed and not self.broken:
            await self.ws.send_str(json.dumps(payload))

    async def ping(self) -> None:
        with contextlib.suppress(ConnectionError):
            for number in range(1, 10_000):
                await asyncio.sleep(1.0)
                await self.send({"type": "ping", "ping_event": {"event_id": number, "ping_ms": None}})

    async def audio(self, data: bytes) -> None:
        pcm = ulaw_decode(data) if self.in_format.startswith("ulaw") else data
        heard = self.ears.feed(pcm)
        if heard == "started":
            if self.fault is Fault.DISCONNECT and self.turns == 0:
                self.broken = True
                self.server.failed_at = asyncio.get_running_loop().time()
                await self.ws.close(code=1011, message=b"simulated failure")
                return
            if (self.response is not None and not self.response.done()) or self.talking():
                if self.response is not None:
                    self.response.cancel()
                self.speaking_until = 0.0
                await self.send({"type": "interruption", "interruption_event": {"event_id": self.event_id}})
        elif isinstance(heard, Pcm):
            self.turns += 1
            text = await asyncio.to_thread(self.server._transcribe, heard)
            self.server.transcripts.append(text)
            if self.fault is Fault.MALFORMED and self.turns == 1:
                self.server.failed_at = asyncio.get_running_loop().time()
                await self.ws.send_str('{"type": "user_transcript", "user_transcription_event": {"user_tr')
                self.broken = True
                return
            await self.send({"type": "user_transcript", "user_transcription_event": {"user_transcript": text}})
            self.start(self.server.policy(text))

    def start(self, reply: Say | CallTool) -> None:
        if self.response is not None and not self.response.done():
            self.response.cancel()
        self.response = asyncio.create_task(self.respond(reply))

    async def respond(self, reply: Say | CallTool) -> None:
        if self.turns:
            await asyncio.sleep(self.server.reply_delay_s)
        if isinstance(reply, CallTool):
            loop = asyncio.get_running_loop()
            self.tool_result = loop.create_future()
            call_id = "toolu_" + uuid.uuid4().hex[:8]
            await self.send({"type": "client_tool_call", "client_tool_call": {
                "tool_name": reply.name, "tool_call_id": call_id, "parameters": reply.arguments}})  # fmt: skip
            result = await self.tool_result
            output = json.loads(result.get("result") or "{}")
            reply = Say(spoken(output))
        self.event_id += 1
        await self.send({"type": "agent_response", "agent_response_event": {"agent_response": reply.text}})
        pcm = await asyncio.to_thread(self.server._say, reply.text, self.out_rate)
        self.speaking_until = asyncio.get_running_loop().time() + pcm.duration_s
        data = ulaw_encode(pcm.data) if self.out_format.startswith("ulaw") else pcm.data
        per_100ms = self.out_rate // 10 * (1 if self.out_format.startswith("ulaw") else 2)
        for index, piece in enumerate(chunks(data, per_100ms)):
            if self.fault is Fault.STALL and self.turns == 1 and index == 3:
                self.broken = True  # goes quiet for good, mid-reply
                return
            await self.send({"type": "audio", "audio_event": {
                "audio_base_64": base64.b64encode(piece).decode(), "event_id": self.event_id}})  # fmt: skip
            self.server.audio_chunks += 1
            await asyncio.sleep(0.01)  # faster than real time, as the service streams
