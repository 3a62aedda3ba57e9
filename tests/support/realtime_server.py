"""A local server speaking the OpenAI Realtime event protocol (GA), for the realtime engine's tests.

It does what the documented server does at the level the engine relies on: `session.created/updated`,
server VAD on the appended audio (`input_audio_buffer.speech_started/stopped`, `committed`), input
transcription (real Whisper), responses streamed as `response.output_item.added`,
`response.output_audio.delta` (real Piper audio in the session's format), transcripts and `response.done`;
function calls and their outputs; `conversation.item.truncate`. What the "model" answers is a small policy
given by the test. Fault injection: `mode = "hang"` (never answers after the caller spoke) or
`"disconnect"` (drops the socket when the caller speaks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from secretary.speech.audio import Pcm, ulaw_decode, ulaw_encode
from tests.support.speech_to_speech import spoken


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class CallTool:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Policy = Callable[[str], Say | CallTool]
_EXACT = re.compile(r"(?:exactly these words|Say exactly):\s*(.+)$", re.S)


@dataclass
class _Session:
    format: dict[str, Any] = field(default_factory=lambda: {"type": "audio/pcm", "rate": 24000})
    speaking: bool = False
    loud_ms: int = 0
    quiet_ms: int = 0
    utterance: bytearray = field(default_factory=bytearray)
    position_ms: int = 0
    response: asyncio.Task[None] | None = None
    last_output: dict[str, Any] = field(default_factory=dict)
    answering: bool = True  # turn_detection.create_response: the server answers each turn its VAD ends

    @property
    def rate(self) -> int:
        return 8000 if self.format.get("type") in ("audio/pcmu", "audio/pcma") else int(self.format.get("rate", 24000))


class RealtimeServer:
    def __init__(self, speak: Callable[[str], Pcm], transcribe: Callable[[Pcm], str], policy: Policy) -> None:
        self._speak = speak
        self._transcribe = transcribe
        self._policy = policy
        self.mode = "normal"
        self.events: list[dict[str, Any]] = []  # every client event but audio appends
        self.sessions: list[dict[str, Any]] = []
        self.audio_appends = 0
        self.paths: list[str] = []
        self.failed_at: float | None = None  # loop time the fault fired: the socket dropped, or the reply owed
        self._server: Server | None = None

    async def start(self) -> str:
        self._server = await serve(self._serve, "127.0.0.1", 0, max_size=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    async def _serve(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        session = _Session()
        await self._send(ws, {"type": "session.created", "session": {"id": "sess_local", "type": "realtime"}})
        try:
            async for raw in ws:
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "input_audio_buffer.append":
                    self.audio_appends += 1
                    await self._audio(ws, session, base64.b64decode(event["audio"]))
                    continue
                self.events.append(event)
                if kind == "session.update":
                    self.sessions.append(event["session"])
                    audio_in = event["session"]["audio"]["input"]
                    session.format = audio_in["format"]
                    session.answering = bool(audio_in.get("turn_detection", {}).get("create_response", True))
                    await self._send(ws, {"type": "session.updated", "session": event["session"]})
                elif kind == "response.create":
                    instructions = (event.get("response") or {}).get("instructions", "")
                    match = _EXACT.search(instructions)
                    text = match.group(1) if match else spoken(session.last_output, "How else can I help?")
                    self._start(ws, session, Say(text))
                elif kind == "conversation.item.create":
                    item = event.get("item", {})
                    if item.get("type") == "function_call_output":
                        session.last_output = json.loads(item.get("output") or "{}")
                elif kind == "conversation.item.truncate":
                    await self._send(
                        ws, {"type": "conversation.item.truncated", **{k: event[k] for k in event if k != "type"}}
                    )
        except ConnectionClosed:
            pass
        finally:
            if session.response is not None:
                session.response.cancel()

    async def _send(self, ws: ServerConnection, event: dict[str, Any]) -> None:
        event.setdefault("event_id", "event_" + uuid.uuid4().hex[:12])
        await ws.send(json.dumps(event))

    async def _audio(self, ws: ServerConnection, session: _Session, data: bytes) -> None:
        pcm = ulaw_decode(data) if session.rate == 8000 else data
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        ms = int(len(samples) / session.rate * 1000)
        loud = samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) > 500
        session.position_ms += ms
        if loud:
            session.loud_ms += ms
            session.quiet_ms = 0
        else:
            session.quiet_ms += ms
            if not session.speaking:
                session.loud_ms = 0
        if session.speaking or session.loud_ms:
            session.utterance += pcm
        if not session.speaking and session.loud_ms >= 60:
            session.speaking = True
            if session.response is not None and not session.response.done():
                session.response.cancel()  # server VAD interrupts the response in progress
            await self._send(ws, {"type": "input_audio_buffer.speech_started", "audio_start_ms": session.position_ms,
                                  "item_id": "item_in_" + uuid.uuid4().hex[:8]})  # fmt: skip
            if self.mode == "disconnect":
                self.failed_at = asyncio.get_running_loop().time()
                await ws.close(1011, "simulated failure")
        elif session.speaking and session.quiet_ms >= 500:
            session.speaking, session.loud_ms = False, 0
            utterance, session.utterance = Pcm(bytes(session.utterance), session.rate), bytearray()
            await self._send(ws, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": session.position_ms})
            await self._send(ws, {"type": "input_audio_buffer.committed", "item_id": "item_in"})
            if self.mode == "hang":
                self.failed_at = asyncio.get_running_loop().time()
                return
            text = await asyncio.to_thread(self._transcribe, utterance)
            await self._send(ws, {"type": "conversation.item.input_audio_transcription.completed",
                                  "item_id": "item_in", "content_index": 0, "transcript": text})  # fmt: skip
            if session.answering:
                self._start(ws, session, self._policy(text))

    def _start(self, ws: ServerConnection, session: _Session, answer: Say | CallTool) -> None:
        if session.response is not None and not session.response.done():
            session.response.cancel()
        session.response = asyncio.create_task(self._respond(ws, session, answer))

    async def _respond(self, ws: ServerConnection, session: _Session, answer: Say | CallTool) -> None:
        response_id = "resp_" + uuid.uuid4().hex[:8]
        await self._send(ws, {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}})
        if isinstance(answer, CallTool):
            call_id = "call_" + uuid.uuid4().hex[:8]
            item = {
                "id": "item_" + uuid.uuid4().hex[:8],
                "type": "function_call",
                "call_id": call_id,
                "name": answer.name,
            }
            await self._send(ws, {"type": "response.output_item.added", "response_id": response_id, "item": item})
            await self._send(ws, {"type": "response.function_call_arguments.done", "response_id": response_id,
                                  "item_id": item["id"], "call_id": call_id, "name": answer.name,
                                  "arguments": json.dumps(answer.arguments)})  # fmt: skip
            await self._send(ws, {"type": "response.done", "response": {"id": response_id, "status": "completed",
                                                                        "output": [item]}})  # fmt: skip
            return
        item_id = "item_" + uuid.uuid4().hex[:8]
        item = {"id": item_id, "type": "message", "role": "assistant"}
        await self._send(ws, {"type": "response.output_item.added", "response_id": response_id, "item": item})
        status = "completed"
        try:
            pcm = (await asyncio.to_thread(self._speak, answer.text)).resampled(session.rate)
            encoded = ulaw_encode(pcm.data) if session.rate == 8000 else pcm.data
            step = len(encoded) // max(1, round(pcm.duration_s / 0.2))  # 200 ms deltas
            step += step & 1
            for offset in range(0, len(encoded), max(2, step)):
                delta = base64.b64encode(encoded[offset : offset + step]).decode()
                await self._send(ws, {"type": "response.output_audio.delta", "response_id": response_id,
                                      "item_id": item_id, "content_index": 0, "delta": delta})  # fmt: skip
                await asyncio.sleep(0.02)  # faster than real time, as the real service streams
            await self._send(ws, {"type": "response.output_audio_transcript.done", "item_id": item_id,
                                  "content_index": 0, "transcript": answer.text})  # fmt: skip
        except asyncio.CancelledError:
            status = "cancelled"
            with contextlib.suppress(ConnectionClosed):
                await self._send(ws, {"type": "response.output_audio_transcript.done", "item_id": item_id,
                                      "content_index": 0, "transcript": answer.text})  # fmt: skip
        with contextlib.suppress(ConnectionClosed):
            await self._send(ws, {"type": "response.done", "response": {"id": response_id, "status": status,
                                                                        "output": [item]}})  # fmt: skip
