"""The OpenAI Realtime engine, through the official `openai` SDK's realtime client (speech to speech).

The session is configured from the domain: the same instructions and tools as the LLM brain (transfer,
hang up, take a message, plus a knowledge lookup), the domain's voice, server VAD. 8 kHz calls use G.711
µ-law both ways (no resampling); other rates use PCM at 24 kHz, resampled on the way in and out.

Barge-in: on `input_audio_buffer.speech_started` the local playback stops at once, and the model is told
how much of its answer the caller heard (`conversation.item.truncate` with `audio_end_ms`), so its memory of
the conversation matches the caller's. Tool calls are resolved by the core's `Conversation`: the model can
only transfer to the domain's directory or its fallback destination.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from openai import AsyncOpenAI

from bridge.engines import realtime_tools
from bridge.engines.base import CallContext, Handoff
from bridge.engines.message_audio import MessageAudio
from bridge.engines.realtime_tools import ToolDesk
from bridge.engines.request import EngineRequest, EngineUnavailable
from bridge.playback import Interruption
from secretary.calls.models import TurnRecord
from secretary.conversation.actions import Action, ActionType
from secretary.conversation.conversation import Conversation
from secretary.conversation.front_desk import FrontDesk
from secretary.errors import ProviderFailed
from secretary.runtime import Runtime
from secretary.speech.audio import StreamResampler, ulaw_decode, ulaw_encode
from secretary.tasks import cancel_and_wait
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_VOICE = "alloy"
MODEL_RATE = 24000
SEND_MIN_BYTES = 640  # batch at least 40 ms of 8 kHz audio per append (fewer, larger messages)


@dataclass(eq=False)
class _Item:
    """One assistant answer (a conversation item) as it streams in and plays out."""

    item_id: str
    transcript: str = ""
    audio_ms: float = 0.0
    interrupted: bool = False
    heard: str | None = None
    record: TurnRecord | None = None  # the turn it was recorded in, once its response is done


@dataclass
class _Turn:
    caller_text: str = ""
    items: list[_Item] = field(default_factory=list)
    action: Action = field(default_factory=Action.continue_)
    record: TurnRecord | None = None


class OpenAiRealtimeEngine:
    name = "openai_realtime"

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        voice: str,
        runtime: Runtime,
        config: SecretaryConfig,
        sample_rate: int,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._model = model
        self._voice = voice
        self._runtime = runtime
        self._config = config
        self._rate = sample_rate
        self._options = options or {}
        self._g711 = sample_rate == 8000
        self._up = None if self._g711 else StreamResampler(sample_rate, MODEL_RATE)
        self._down = None if self._g711 else StreamResampler(MODEL_RATE, sample_rate)
        self._outgoing = bytearray()
        self._wake = asyncio.Event()
        self._conversation = Conversation(config, FrontDesk())
        self._connection: Any = None
        self._call: CallContext | None = None
        self._items: dict[str, _Item] = {}
        self._turn = _Turn()
        self._pending_action: Action | None = None
        self._taking_message = False
        self._scripted = False  # the response under way says our own words
        self._message_audio = MessageAudio(sample_rate, config.recording.message_max_seconds)
        self._tools = ToolDesk(runtime, config, self._conversation)
        self._responding = False
        self._last_message = 0.0
        self.connected = asyncio.Event()
        self.health_key = f"realtime:{self.name}"

    @classmethod
    def from_request(cls, request: EngineRequest) -> OpenAiRealtimeEngine:
        spec, llm = request.spec, request.runtime.settings.llm
        identity = request.runtime.providers.credentials.identify(spec, request.config, "openai_realtime")
        key = identity.credential.value
        base_url = spec.base_url or llm.base_url
        if not key and base_url is None:
            raise EngineUnavailable("OpenAI Realtime needs an API key: none this domain may use (api_key_ref)")
        client = AsyncOpenAI(api_key=key or "not-needed", base_url=base_url, max_retries=0)
        engine = cls(
            client,
            spec.model or DEFAULT_MODEL,
            spec.voice or DEFAULT_VOICE,
            request.runtime,
            request.config,
            request.sample_rate,
            dict(spec.options),
        )
        engine.health_key = identity.health_key("realtime", spec)
        return engine

    # -- audio in ------------------------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        self._message_audio.feed(pcm)
        if self._connection is None:
            return
        self._outgoing += ulaw_encode(pcm) if self._up is None else self._up.process(pcm)
        if len(self._outgoing) >= (SEND_MIN_BYTES // 2 if self._g711 else SEND_MIN_BYTES * 3):
            self._wake.set()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._outgoing:
                continue
            chunk = base64.b64encode(self._outgoing).decode("ascii")
            self._outgoing.clear()
            await self._connection.send_raw(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))

    # -- the conversation ----------------------------------------------------------------------------------

    def _session(self, *, answering: bool = True) -> dict[str, Any]:
        """`answering=False` while the caller leaves a message: the server VAD still ends their turn, but the
        model does not answer it (`create_response`): the message is ours to thank for."""
        audio_format: dict[str, Any] = {"type": "audio/pcmu"} if self._g711 else {"type": "audio/pcm", "rate": 24000}
        vad = {
            "type": "server_vad",
            "threshold": float(self._options.get("vad_threshold", 0.5)),
            "prefix_padding_ms": int(self._options.get("prefix_padding_ms", 300)),
            "silence_duration_ms": int(self._options.get("silence_duration_ms", 500)),
            "create_response": answering,
        }
        tools = [{"type": "function", **t} for t in realtime_tools.definitions(self._config)]
        return {
            "type": "realtime",
            "model": self._model,
            "instructions": realtime_tools.instructions(self._config),
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": audio_format,
                    "turn_detection": vad,
                    "transcription": {"model": str(self._options.get("transcription_model", "gpt-4o-mini-transcribe"))},
                },
                "output": {"format": audio_format, "voice": self._voice},
            },
            "tools": tools,
            "tool_choice": "auto",
        }

    async def run(self, call: CallContext) -> None:
        self._call = call
        try:
            manager = self._client.realtime.connect(model=self._model)
            async with manager as connection:
                self._connection = connection
                await self._connection.send({"type": "session.update", "session": self._session()})
                greeting = call.lifecycle.greeting()
                await self._respond(f"Greet the caller with exactly these words: {greeting}", scripted=True)
                sender = asyncio.create_task(self._sender(), name="openai-sender")
                try:
                    async for raw in self._events(connection):
                        if await self._handle(call, raw):
                            return
                finally:
                    await cancel_and_wait(sender)
        except ProviderFailed:
            raise
        except Exception as exc:
            raise ProviderFailed(f"OpenAI Realtime: {type(exc).__name__}: {exc}") from exc
        finally:
            self._connection = None
        raise ProviderFailed("OpenAI Realtime closed the connection mid-call")

    async def _events(self, connection: Any) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await connection.recv_bytes()
            except Exception as exc:
                if type(exc).__name__.startswith("ConnectionClosed"):
                    return
                raise
            self._last_message = loop.time()
            self.connected.set()
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                raise ProviderFailed("OpenAI Realtime sent a malformed message") from None
            if isinstance(event, dict):
                yield event

    async def _respond(self, instructions: str | None = None, *, scripted: bool = False) -> None:
        """`scripted`: the response says our own words (the greeting, the thanks for a message): not a turn."""
        self._scripted = scripted
        response: dict[str, Any] = {"type": "response.create"}
        if instructions:
            response["response"] = {"instructions": instructions}
        await self._connection.send(response)

    async def _handle(self, call: CallContext, event: dict[str, Any]) -> bool:
        """One server event; True when the conversation is over."""
        kind = event.get("type", "")
        if kind == "input_audio_buffer.speech_started":
            call.caller_active()
            if call.playback.speaking:
                await self._barge_in(call)
        elif kind == "input_audio_buffer.speech_stopped":
            call.caller_active()
            call.awaiting_reply()
        elif kind == "conversation.item.input_audio_transcription.completed":
            text = str(event.get("transcript", "")).strip()
            if self._taking_message and text:
                return await self._message_taken(call, text)
            self._turn.caller_text = (self._turn.caller_text + " " + text).strip()
        elif kind == "response.created":
            self._responding = True
        elif kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") == "message":
                self._item(str(item.get("id", "")))
        elif kind == "response.output_audio.delta":
            self._play(call, str(event.get("item_id", "")), str(event.get("delta", "")))
        elif kind == "response.output_audio_transcript.done":
            self._item(str(event.get("item_id", ""))).transcript = str(event.get("transcript", ""))
        elif kind == "response.output_audio_transcript.delta":
            self._item(str(event.get("item_id", ""))).transcript += str(event.get("delta", ""))
        elif kind == "response.function_call_arguments.done":
            await self._tool(event)
        elif kind == "response.done":
            self._responding = False
            return await self._response_done(call, event)
        elif kind == "error":
            error = event.get("error") or {}
            log.warning("openai_realtime_error", code=error.get("code"), message=error.get("message"))
        return False

    def _item(self, item_id: str) -> _Item:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(item_id)
            self._turn.items.append(item)
        return item

    def _play(self, call: CallContext, item_id: str, delta: str) -> None:
        try:
            audio = base64.b64decode(delta)
        except ValueError:
            return
        pcm = ulaw_decode(audio) if self._down is None else self._down.process(audio)
        item = self._item(item_id)
        item.audio_ms += len(pcm) / 2 / self._rate * 1000
        call.playback.enqueue(pcm, "", item_id)
        call.reply_started()

    async def _barge_in(self, call: CallContext) -> None:
        interruption = await call.playback.interrupt()
        call.note_barge_in()
        for item_id, played_ms in interruption.played_ms.items():
            item = self._items.get(item_id)
            if item is None or played_ms >= item.audio_ms - 1:
                continue
            item.interrupted = True
            fraction = played_ms / item.audio_ms if item.audio_ms else 0.0
            words = item.transcript.split()
            item.heard = " ".join(words[: round(len(words) * fraction)])
            await self._connection.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": item_id,
                    "content_index": 0,
                    "audio_end_ms": played_ms,
                }
            )
            log.info("barge_in", item_id=item_id, played_ms=played_ms, heard=item.heard)
            if item.record is not None:
                call.lifecycle.revise(item.record, heard_text=item.heard)

    async def _tool(self, event: dict[str, Any]) -> None:
        name, call_id = str(event.get("name", "")), str(event.get("call_id", ""))
        result = await self._tools.call(name, str(event.get("arguments", "")))
        if result.action is not None:
            self._pending_action = result.action
            self._taking_message = result.action.type is ActionType.TAKE_MESSAGE
            if self._taking_message:
                self._message_audio.start()
                await self._connection.send({"type": "session.update", "session": self._session(answering=False)})
        if result.decided:
            self._turn.action = result.action or Action.continue_()
        await self._connection.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": json.dumps(result.output)},
            }
        )
        await self._respond()

    async def _response_done(self, call: CallContext, event: dict[str, Any]) -> bool:
        response = event.get("response") or {}
        outputs = response.get("output") or []
        if any(isinstance(o, dict) and o.get("type") == "function_call" for o in outputs):
            return False  # the answer to the tool call comes in the next response
        turn = self._turn
        said = " ".join(i.transcript for i in turn.items if i.transcript).strip()
        heard = next((i.heard for i in turn.items if i.interrupted), None)
        scripted, self._scripted = self._scripted, False
        if not scripted and (said or turn.caller_text):
            record = call.record_turn(turn.caller_text, said, heard_text=heard, action=turn.action, brain=self.name)
            turn.record = record
            for item in turn.items:
                item.record = record
        self._turn = _Turn()
        self._items = {i.item_id: i for i in turn.items if not i.interrupted and i.audio_ms}  # late truncates
        action, self._pending_action = self._pending_action, None
        if action is None:
            return False
        if action.type is ActionType.TAKE_MESSAGE:
            call.lifecycle.act(action)
            return False
        await call.finish(action)
        return True

    async def _message_taken(self, call: CallContext, message: str) -> bool:
        self._taking_message = False
        async with call.message_held(self._message_audio.take()) as held:
            reply = await call.take_message(held, message)
        call.record_turn(message, reply.text, action=reply.action, brain=reply.brain)
        self._pending_action = reply.action
        await self._respond(f"Say exactly: {reply.text}", scripted=True)
        return False

    # -- for the engine chain -------------------------------------------------------------------------------

    @property
    def replying(self) -> bool:
        return self._responding

    @property
    def quiet_s(self) -> float:
        if not self._responding:
            return 0.0
        return asyncio.get_running_loop().time() - self._last_message

    def handoff(self, interruption: Interruption) -> Handoff:
        turn = self._turn
        said = " ".join(i.transcript for i in turn.items if i.transcript).strip()
        heard: list[str] = []
        for item in turn.items:
            played = interruption.played_ms.get(item.item_id, 0)
            words = item.transcript.split()
            share = min(1.0, played / item.audio_ms) if item.audio_ms else 0.0
            heard.extend(words[: round(len(words) * share)])
        return Handoff(turn.caller_text, said, " ".join(heard))

    async def probe(self) -> None:
        async with self._client.realtime.connect(model=self._model) as connection:
            await connection.recv_bytes()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.close()
