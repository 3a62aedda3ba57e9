"""A local Gemini Live endpoint: the `BidiGenerateContent` WebSocket (key in `x-goog-api-key`).

It speaks the documented protocol: `setup` must come first and is answered with `setupComplete`; a
`clientContent` turn asking for exact words is spoken; `realtimeInput.audio` (16 kHz L16) is heard with an
energy VAD, transcribed by Whisper (`inputTranscription`), and answered through the policy of
`speech_to_speech`: `serverContent.modelTurn` parts of 24 kHz L16 (real Piper audio) with
`outputTranscription`, then `generationComplete`, `turnComplete` and `usageMetadata`; a function call goes out
as `toolCall` and waits for its `toolResponse`; a caller speaking over a reply gets `interrupted`.

Faults: 500 / 429 at the handshake; `hang` accepts the socket and never answers `setup`; `disconnect` closes
it (1011) as the caller starts speaking; `malformed` answers the caller's first turn with broken JSON;
`stall` starts that answer and goes quiet for good.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from secretary.speech.audio import Pcm
from tests.support.fake_servers import FakeServer, Fault
from tests.support.speech_to_speech import CallerEars, CallTool, Policy, Say, answer, chunks, spoken

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
IN_RATE = 16000
OUT_RATE = 24000


class FakeGemini(FakeServer):
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
        self.setups: list[dict[str, Any]] = []
        self.tool_responses: list[dict[str, Any]] = []
        self.transcripts: list[str] = []
        self.client_messages: list[str] = []  # the top-level key of every message but audio
        self.mime_types: set[str] = set()
        self.failed_at: float | None = None  # loop time a mid-call fault fired (for the benchmark)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self.live)
        return app

    async def live(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"route": "live", "key": request.headers.get("x-goog-api-key")})
        if request.headers.get("x-goog-api-key") != self._key:
            return web.json_response({"error": {"code": 403, "message": "API key not valid"}}, status=403)
        error = self.error_response()
        if error is not None:
            return error
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await _Session(self, ws).run()
        return ws


class _Session:
    def __init__(self, server: FakeGemini, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self.fault = server.fault
        self.ears = CallerEars(IN_RATE)
        self.response: asyncio.Task[None] | None = None
        self.tool_response: asyncio.Future[dict[str, Any]] | None = None
        self.turns = 0
        self.broken = False
        self.speaking_until = 0.0  # when the reply's audio ends on the caller's side (sent faster than real time)

    def talking(self) -> bool:
        return asyncio.get_running_loop().time() < self.speaking_until

    async def run(self) -> None:
        first = await self.ws.receive()
        if first.type != WSMsgType.TEXT:
            return
        setup = json.loads(first.data)
        if "setup" not in setup:
            await self.ws.close(code=1007, message=b"setup must be the first message")
            return
        self.server.setups.append(setup["setup"])
        if self.fault is Fault.HANG:
            await self.server.hang()
            return
        await self.send({"setupComplete": {}})
        try:
            async for message in self.ws:
                if message.type != WSMsgType.TEXT or self.broken:
                    continue
                event = json.loads(message.data)
                if "realtimeInput" in event:
                    audio = event["realtimeInput"].get("audio") or {}
                    self.server.mime_types.add(str(audio.get("mimeType")))
                    await self.audio(base64.b64decode(audio.get("data", "")))
                    continue
                self.server.client_messages.extend(event)
                if "clientContent" in event:
                    parts = event["clientContent"]["turns"][-1]["parts"]
                    text = parts[0]["text"].split("words:", 1)[-1].strip()
                    self.start(Say(text))
                elif "toolResponse" in event:
                    self.server.tool_responses.append(event["toolResponse"])
                    if self.tool_response is not None and not self.tool_response.done():
                        self.tool_response.set_result(event["toolResponse"])
                if self.ws.closed:
                    return
        finally:
            if self.response is not None:
                self.response.cancel()

    async def send(self, payload: dict[str, Any]) -> None:
        if not self.ws.closed and not self.broken:
            await self.ws.send_str(json.dumps(payload))

    async def audio(self, pcm: bytes) -> None:
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
                await self.send({"serverContent": {"interrupted": True}})
        elif isinstance(heard, Pcm):
            self.turns += 1
            text = await asyncio.to_thread(self.server._transcribe, heard)
            self.server.transcripts.append(text)
            if self.fault is Fault.MALFORMED and self.turns == 1:
                self.server.failed_at = asyncio.get_running_loop().time()
                await self.ws.send_str('{"serverContent": {"inputTranscription": {"te')
                self.broken = True
                return
            await self.send({"serverContent": {"inputTranscription": {"text": text}}})
            self.start(self.server.policy(text))

    def start(self, reply: Say | CallTool) -> None:
        if self.response is not None and not self.response.done():
            self.response.cancel()
        self.response = asyncio.create_task(self.respond(reply))

    async def respond(self, reply: Say | CallTool) -> None:
        if isinstance(reply, CallTool):
            self.tool_response = asyncio.get_running_loop().create_future()
            call = {"id": "fc_" + uuid.uuid4().hex[:8], "name": reply.name, "args": reply.arguments}
            await self.send({"toolCall": {"functionCalls": [call]}})
            response = await self.tool_response
            output = response["functionResponses"][0].get("response") or {}
            reply = Say(spoken(output))
        pcm = await asyncio.to_thread(self.server._say, reply.text, OUT_RATE)
        self.speaking_until = asyncio.get_running_loop().time() + pcm.duration_s
        await self.send({"serverContent": {"outputTranscription": {"text": reply.text}}})
        for index, piece in enumerate(chunks(pcm.data, OUT_RATE // 10 * 2)):
            if self.fault is Fault.STALL and self.turns == 1 and index == 3:
                self.broken = True
                return
            part = {"inlineData": {"mimeType": f"audio/pcm;rate={OUT_RATE}", "data": base64.b64encode(piece).decode()}}
            await self.send({"serverContent": {"modelTurn": {"parts": [part]}}})
            await asyncio.sleep(0.01)
        await self.send({"serverContent": {"generationComplete": True}})
        await self.send({"serverContent": {"turnComplete": True}})
        words = len(reply.text.split())
        await self.send({"usageMetadata": {"promptTokenCount": 100 + words, "responseTokenCount": 2 * words,
                                           "totalTokenCount": 100 + 3 * words}})  # fmt: skip
