"""A local Deepgram live-transcription endpoint: the `/v1/listen` WebSocket.

It reads the query (`encoding` linear16|mulaw, `sample_rate`, `interim_results`, `endpointing`,
`utterance_end_ms`, `vad_events`), takes binary audio and the `KeepAlive` / `Finalize` / `CloseStream`
text messages, and answers as Deepgram does: `SpeechStarted`, interim and final `Results` (with
`is_final` / `speech_final`), `UtteranceEnd`, and `Metadata` before it closes. Speech is found by energy, in
audio time (so audio sent faster than real time works), and transcribed with the local Whisper; interim
results go out only while audio arrives at about real-time pace. A stream
with neither audio nor KeepAlive for `idle_timeout_s` is closed with 1011, like Deepgram's 10 s timeout.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from secretary.speech.audio import Pcm, ulaw_decode
from tests.support.fake_servers import FakeServer, Fault

FRAME_S = 0.02
SPEECH_RMS = 250.0
INTERIM_EVERY_S = 1.0
MODEL_INFO = {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}


class FakeDeepgram(FakeServer):
    def __init__(self, transcribe: Callable[[Pcm], str], api_key: str, idle_timeout_s: float = 10.0) -> None:
        super().__init__()
        self._transcribe = transcribe
        self._key = api_key
        self.idle_timeout_s = idle_timeout_s
        self.keepalives = 0
        self.close_streams = 0
        self.closed_idle = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/listen", self.listen)
        return app

    async def listen(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {
                "query": dict(request.query),
                "keyterms": request.query.getall("keyterm", []),
                "keywords": request.query.getall("keywords", []),
            }
        )
        if request.headers.get("Authorization") != f"Token {self._key}":
            return web.Response(status=401, text="invalid credentials")
        error = self.error_response()
        if error is not None:
            return error
        if self.fault is Fault.HANG:
            await self.hang()
            return web.Response(status=503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await _Session(self, ws, request.query).run()
        return ws


class _Session:
    def __init__(self, server: FakeDeepgram, ws: web.WebSocketResponse, query: Any) -> None:
        self.server = server
        self.ws = ws
        self.rate = int(query.get("sample_rate", "16000"))
        self.mulaw = query.get("encoding", "linear16") == "mulaw"
        self.interim = query.get("interim_results") == "true"
        self.vad_events = query.get("vad_events") == "true"
        self.endpointing_s = int(query.get("endpointing", "10")) / 1000
        self.utterance_end_s = int(query.get("utterance_end_ms", "0")) / 1000 if query.get("utterance_end_ms") else 0
        self.request_id = str(uuid.uuid4())
        self.frame_bytes = int(self.rate * FRAME_S) * 2
        self.pending = b""
        self.clock = 0.0  # seconds of audio received
        self.segment = bytearray()
        self.segment_start = 0.0
        self.in_speech = False
        self.silence = 0.0
        self.next_interim = INTERIM_EVERY_S
        self.last_word_end: float | None = None
        self.since_word = 0.0
        self.broken = False  # a fault has fired: say nothing more
        self.started = asyncio.get_running_loop().time()

    @property
    def fault(self) -> Fault:
        """Read live: a test can break a stream that is already open (mid-call)."""
        return self.server.fault

    async def run(self) -> None:
        while True:
            try:
                message = await self.ws.receive(timeout=self.server.idle_timeout_s)
            except TimeoutError:
                self.server.closed_idle += 1
                await self.ws.close(code=1011, message=b"NET-0001")
                return
            if message.type == WSMsgType.BINARY:
                await self.audio(ulaw_decode(message.data) if self.mulaw else message.data)
            elif message.type == WSMsgType.TEXT:
                kind = json.loads(message.data).get("type")
                if kind == "KeepAlive":
                    self.server.keepalives += 1
                elif kind in ("CloseStream", "Finalize") and not self.broken:
                    self.server.close_streams += kind == "CloseStream"
                    await self.finalize(speech_final=False, from_finalize=True)
                    if kind == "CloseStream":
                        await self.send({"type": "Metadata", **self.metadata()})
                        await self.ws.close(code=1000)
                        return
            else:
                return
            if self.ws.closed:
                return

    async def send(self, payload: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(payload))

    async def audio(self, data: bytes) -> None:
        if self.broken:
            return
        self.pending += data
        while len(self.pending) >= self.frame_bytes:
            frame, self.pending = self.pending[: self.frame_bytes], self.pending[self.frame_bytes :]
            await self.frame(frame)
            if self.broken or self.ws.closed:
                return

    async def frame(self, frame: bytes) -> None:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        loud = float(np.sqrt(np.mean(samples * samples))) > SPEECH_RMS
        start = self.clock
        self.clock += FRAME_S
        if loud and not self.in_speech:
            self.in_speech, self.segment_start, self.segment = True, start, bytearray()
            self.next_interim = INTERIM_EVERY_S
            if self.fault is Fault.MALFORMED:
                self.broken = True
                await self.ws.send_str('{"type": "Results", "channel_index": [0, 1], "channel": {"altern')
                return
            if self.vad_events:
                await self.send({"type": "SpeechStarted", "channel": [0], "timestamp": round(start, 3)})
            if self.fault is Fault.STALL:
                self.broken = True  # heard the speech start, then never another word
                return
        if not self.in_speech:
            if self.last_word_end is not None and self.utterance_end_s:
                self.since_word += FRAME_S
                if self.since_word >= self.utterance_end_s:
                    await self.send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end})
                    self.last_word_end = None
            return
        self.segment += frame
        self.silence = 0.0 if loud else self.silence + FRAME_S
        heard_s = len(self.segment) / 2 / self.rate
        if self.fault is Fault.DISCONNECT and heard_s >= 0.5:
            self.broken = True
            await self.ws.close(code=1011, message=b"NET-0001")
            return
        if self.interim and heard_s >= self.next_interim:
            self.next_interim += INTERIM_EVERY_S
            live = self.clock <= asyncio.get_running_loop().time() - self.started + 0.5
            if live:  # a recording sent faster than real time gets its finals only, as it would be read
                await self.results(is_final=False, speech_final=False)
        if self.silence >= self.endpointing_s:
            await self.finalize(speech_final=True)

    async def finalize(self, *, speech_final: bool, from_finalize: bool = False) -> None:
        if self.in_speech and self.segment:
            await self.results(is_final=True, speech_final=speech_final, from_finalize=from_finalize)
            self.last_word_end, self.since_word = self.clock - self.silence, 0.0
        self.in_speech, self.segment, self.silence = False, bytearray(), 0.0

    async def results(self, *, is_final: bool, speech_final: bool, from_finalize: bool = False) -> None:
        pcm = Pcm(bytes(self.segment), self.rate)
        text = (await asyncio.to_thread(self.server._transcribe, pcm)).strip()
        words = text.split()
        span = pcm.duration_s / max(1, len(words))
        payload: dict[str, Any] = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(pcm.duration_s, 3),
            "start": round(self.segment_start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.98,
                        "words": [
                            {
                                "word": w.strip(".,!?").lower(),
                                "start": round(self.segment_start + i * span, 3),
                                "end": round(self.segment_start + (i + 1) * span, 3),
                                "confidence": 0.98,
                                "punctuated_word": w,
                            }
                            for i, w in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": {"request_id": self.request_id, "model_info": MODEL_INFO, "model_uuid": str(uuid.uuid4())},
        }
        await self.send(payload)

    def metadata(self) -> dict[str, Any]:
        return {
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": "0" * 64,
            "created": "2025-01-01T00:00:00.000Z",
            "duration": round(self.clock, 3),
            "channels": 1,
            "models": [str(uuid.uuid4())],
            "model_info": {},
        }
