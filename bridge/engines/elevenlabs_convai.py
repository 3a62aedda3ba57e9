"""ElevenLabs Conversational AI (Agents Platform) as a realtime engine, over its documented WebSocket.

Why not the official `elevenlabs` SDK: its `AsyncConversation` can be pointed at another base URL, but it
drops the formats the server announces in `conversation_initiation_metadata` (the agent's input and output
audio format are set on the agent, and the call's audio must be converted to and from them), runs client
tools on an event loop of its own in another thread, and turns receive errors into a log line. The protocol
is small, so this speaks it with `websockets`:

- A private agent is reached through a signed URL (`GET /v1/convai/conversation/get-signed-url?agent_id=…`
  with `xi-api-key`); a public one directly (`/v1/convai/conversation?agent_id=…`).
- First message: `conversation_initiation_client_data` with the domain's overrides — the prompt (the LLM
  brain's instructions), `first_message` (the domain's greeting), `language`, and the voice (`tts.voice_id`)
  when the entry names one. The agent must allow these overrides (agent settings → Security).
- The server answers `conversation_initiation_metadata` with `user_input_audio_format` and
  `agent_output_audio_format` (`pcm_8000` … `pcm_48000`, `ulaw_8000`): `ulaw_8000` both ways serves an
  8 kHz call without resampling.
- Audio: `{"user_audio_chunk": base64}` out; `audio` events in (`audio_base_64`, `event_id`); `interruption`
  (barge-in: the playback stops, audio of older events is dropped); `ping` → `pong` with its `event_id`;
  `user_transcript`, `agent_response` and `agent_response_correction` (what was said after a cut) for the
  transcript.
- Tools are *client tools* defined on the agent with the names and parameters of
  `bridge.engines.realtime_tools.definitions` (`transfer_call`, `take_message`, `end_call`,
  `lookup_knowledge`): `client_tool_call` → `client_tool_result`. The decisions are resolved by the core's
  `Conversation` (the directory and the fallback destination only).

ElevenLabs sends no "response done": a reply is over when its audio has stopped for `SETTLE_S`, and it is
unfinished (for the chain's stall deadline) while less audio arrived than its text needs at a brisk pace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bridge.engines import realtime_tools
from bridge.engines.agent_turn import AgentTurn, thank_for_message
from bridge.engines.base import CallContext, Handoff
from bridge.engines.message_audio import MessageAudio
from bridge.engines.realtime_tools import ToolDesk
from bridge.engines.request import EngineRequest, EngineUnavailable
from bridge.engines.wire_audio import WireAudio
from bridge.playback import Interruption
from bridge.prompts import PromptAudio, beep
from secretary.conversation.actions import Action, ActionType
from secretary.conversation.conversation import Conversation
from secretary.conversation.front_desk import FrontDesk
from secretary.errors import ProviderFailed
from secretary.runtime import Runtime
from secretary.tasks import cancel_and_wait
from secretary.tenants.config import SecretaryConfig
from secretary.usage import UsageMeter

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
CLOSE_S = 0.5  # a failed provider gets this long for the closing handshake, not websockets' 10 s
SEND_MS = 100  # caller audio per user_audio_chunk
TICK_S = 0.2
SETTLE_S = 0.6  # no agent audio this long after a reply's last chunk: the reply is over
WORDS_PER_S = 5.4  # twice the usual pace: a reply with less audio than its text needs at this pace is unfinished


class ConvaiFailed(ProviderFailed):
    def __init__(self, message: str, status_code: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class ElevenLabsConvaiEngine:
    name = "elevenlabs_convai"

    def __init__(
        self,
        runtime: Runtime,
        config: SecretaryConfig,
        sample_rate: int,
        prompts: PromptAudio,
        *,
        agent_id: str,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        voice: str | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._runtime = runtime
        self._config = config
        self._rate = sample_rate
        self._prompts = prompts
        self._agent_id = agent_id
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._voice = voice
        self._connect_timeout_s = connect_timeout_s
        self._conversation = Conversation(config, FrontDesk())
        self._tools = ToolDesk(runtime, config, self._conversation)
        self._ws: ClientConnection | None = None
        self._input: WireAudio | None = None
        self._output: WireAudio | None = None
        self._outgoing = bytearray()
        self._wake = asyncio.Event()
        self._call: CallContext | None = None
        self._usage = UsageMeter()
        self._turn = AgentTurn("el-0")
        self._turns = 0
        self._last_interrupt = 0
        self._pending: Action | None = None
        self._taking_message = False
        self._message_audio = MessageAudio(sample_rate, config.recording.message_max_seconds)
        self._done = False
        self._last_message = 0.0
        self.connected = asyncio.Event()
        self.health_key = f"realtime:{self.name}"

    @classmethod
    def from_request(cls, request: EngineRequest) -> ElevenLabsConvaiEngine:
        spec = request.spec
        agent_id = str(spec.options.get("agent_id") or spec.model or "")
        if not agent_id:
            raise EngineUnavailable("elevenlabs_convai needs the agent's id (options.agent_id)")
        identity = request.runtime.providers.credentials.identify(spec, request.config, "elevenlabs_convai")
        key = identity.credential.value
        base_url = spec.base_url or DEFAULT_BASE_URL
        engine = cls(
            request.runtime,
            request.config,
            request.sample_rate,
            request.prompts,
            agent_id=agent_id,
            api_key=key,
            base_url=base_url,
            voice=spec.voice,
            connect_timeout_s=max(request.runtime.settings.fallback.realtime_connect_s * 3, 3.0),
        )
        engine.health_key = identity.health_key("realtime", spec)
        return engine

    # -- audio in ------------------------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        self._message_audio.feed(pcm)
        if self._input is None or self._done:
            return
        self._outgoing += self._input.outbound(pcm)
        per_ms = self._input.rate * (1 if self._input.ulaw else 2) / 1000
        if len(self._outgoing) >= SEND_MS * per_ms:
            self._wake.set()

    async def _sender(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._outgoing:
                chunk = base64.b64encode(self._outgoing).decode("ascii")
                self._outgoing.clear()
                await ws.send(json.dumps({"user_audio_chunk": chunk}))

    # -- the conversation ----------------------------------------------------------------------------------

    async def _url(self) -> str:
        query = urlencode({"agent_id": self._agent_id})
        if not self._key:
            return _ws(self._base) + "/v1/convai/conversation?" + query
        url = f"{self._base}/v1/convai/conversation/get-signed-url?{query}"
        timeout = aiohttp.ClientTimeout(total=self._connect_timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers={"xi-api-key": self._key}) as response,
            ):
                if response.status != 200:
                    retry = response.headers.get("Retry-After")
                    raise ConvaiFailed(
                        f"ElevenLabs refused the signed URL (HTTP {response.status})",
                        response.status,
                        float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
                    )
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise ConvaiFailed(f"ElevenLabs signed URL failed: {type(exc).__name__}") from None
        signed = body.get("signed_url") if isinstance(body, dict) else None
        if not isinstance(signed, str) or not signed.startswith(("ws://", "wss://")):
            raise ConvaiFailed("ElevenLabs sent no signed URL")
        return signed

    def _initiation(self, greeting: str) -> dict[str, Any]:
        override: dict[str, Any] = {
            "agent": {
                "prompt": {"prompt": realtime_tools.instructions(self._config)},
                "first_message": greeting,
                "language": self._config.language.split("-")[0],
            }
        }
        if self._voice:
            override["tts"] = {"voice_id": self._voice}
        return {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": override,
            "dynamic_variables": {"company": self._config.company, "secretary": self._config.name},
        }

    async def run(self, call: CallContext) -> None:
        self._call = call
        self._usage = UsageMeter(call.state.usage)
        try:
            url = await self._url()
            async with asyncio.timeout(self._connect_timeout_s):
                ws = await websockets.connect(url, max_size=16 * 1024 * 1024, open_timeout=None, close_timeout=CLOSE_S)
        except ProviderFailed:
            raise
        except InvalidStatus as exc:
            status = exc.response.status_code
            retry = exc.response.headers.get("Retry-After")
            raise ConvaiFailed(
                f"ElevenLabs refused the conversation (HTTP {status})",
                status,
                float(retry) if retry and retry.isdigit() else None,
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ConvaiFailed(f"ElevenLabs is unreachable: {type(exc).__name__}") from None
        self._ws = ws
        sender: asyncio.Task[None] | None = None
        try:
            await ws.send(json.dumps(self._initiation(call.lifecycle.greeting())))
            sender = asyncio.create_task(self._sender(ws), name="convai-sender")
            loop = asyncio.get_running_loop()
            while True:
                try:  # not `wait_for`: on 3.11 it swallows a cancel that lands as a message arrives
                    async with asyncio.timeout(TICK_S):
                        raw = await ws.recv()
                except TimeoutError:
                    if await self._settled(call):
                        return
                    continue
                except ConnectionClosed as exc:
                    if self._done:
                        return
                    code = exc.rcvd.code if exc.rcvd else 1006
                    raise ConvaiFailed(f"ElevenLabs closed the conversation (code {code})") from None
                self._last_message = loop.time()
                self.connected.set()
                try:
                    message = json.loads(raw)
                except json.JSONDecodeError:
                    raise ConvaiFailed("ElevenLabs sent a malformed message") from None
                if isinstance(message, dict) and await self._handle(call, ws, message):
                    return
        finally:
            await cancel_and_wait(sender)
            self._ws = None
            await ws.close()

    async def _handle(self, call: CallContext, ws: ClientConnection, message: dict[str, Any]) -> bool:
        """One server message; True when the conversation is over."""
        kind = message.get("type")
        if kind == "conversation_initiation_metadata":
            event = message.get("conversation_initiation_metadata_event") or {}
            try:
                self._input = WireAudio(str(event.get("user_input_audio_format", "pcm_16000")), self._rate)
                self._output = WireAudio(str(event.get("agent_output_audio_format", "pcm_16000")), self._rate)
            except ValueError as exc:
                raise ConvaiFailed(f"ElevenLabs audio format: {exc}") from None
            log.info("convai_started", conversation_id=event.get("conversation_id"),
                     input=self._input.format, output=self._output.format)  # fmt: skip
        elif kind == "audio":
            event = message.get("audio_event") or {}
            if int(event.get("event_id") or 0) > self._last_interrupt:
                self._play(call, str(event.get("audio_base_64", "")))
        elif kind == "agent_response":
            text = str((message.get("agent_response_event") or {}).get("agent_response", "")).strip()
            self._turn.said = " ".join(filter(None, [self._turn.said, text]))
        elif kind == "agent_response_correction":
            event = message.get("agent_response_correction_event") or {}
            corrected = str(event.get("corrected_agent_response", "")).strip()
            original = str(event.get("original_agent_response", "")).strip()
            if original and original in self._turn.said:
                self._turn.said = self._turn.said.replace(original, corrected)
        elif kind == "user_transcript":
            text = str((message.get("user_transcription_event") or {}).get("user_transcript", "")).strip()
            return await self._caller_said(call, text)
        elif kind == "interruption":
            self._last_interrupt = int((message.get("interruption_event") or {}).get("event_id") or 0)
            await self._barge_in(call)
        elif kind == "ping":
            event = message.get("ping_event") or {}
            await ws.send(json.dumps({"type": "pong", "event_id": event.get("event_id")}))
        elif kind == "client_tool_call":
            await self._tool(ws, message.get("client_tool_call") or {})
        return await self._settled(call)

    def _play(self, call: CallContext, data: str) -> None:
        if self._output is None or self._done:
            return
        try:
            audio = base64.b64decode(data)
        except ValueError:
            return
        turn = self._turn
        seconds = self._output.seconds(audio)
        turn.audio_s += seconds
        turn.last_audio = asyncio.get_running_loop().time()
        self._usage.add(f"realtime.{self.name}.reply_seconds", round(seconds, 3))
        call.playback.enqueue(self._output.inbound(audio), "", turn.tag)
        call.reply_started()

    async def _caller_said(self, call: CallContext, text: str) -> bool:
        call.caller_active()
        if not text:
            return False
        if self._taking_message:
            return await self._message_taken(call, text)
        self._turn.write(call, self.name)
        if self._pending is not None:  # the caller spoke before the agent acted on it: the action stands
            return False
        self._turns += 1
        self._turn = AgentTurn(f"el-{self._turns}", caller_text=text)
        call.awaiting_reply()
        return False

    async def _barge_in(self, call: CallContext) -> None:
        interruption = await call.playback.interrupt()
        turn = self._turn
        played = interruption.played_ms.get(turn.tag, 0) / 1000
        if turn.audio_s and played < turn.audio_s - 0.05:
            call.note_barge_in()
            turn.cut_at(played)
            log.info("barge_in", heard=turn.heard)

    async def _tool(self, ws: ClientConnection, tool_call: dict[str, Any]) -> None:
        name = str(tool_call.get("tool_name", ""))
        parameters = tool_call.get("parameters") or {}
        result = await self._tools.call(name, parameters if isinstance(parameters, dict) else {})
        if result.action is not None:
            self._pending = result.action
        if result.decided:
            self._turn.action = result.action or Action.continue_()
        await ws.send(
            json.dumps(
                {
                    "type": "client_tool_result",
                    "tool_call_id": tool_call.get("tool_call_id"),
                    "result": json.dumps(result.output),
                    "is_error": "error" in result.output,
                }
            )
        )

    async def _settled(self, call: CallContext) -> bool:
        """Once the agent's reply has played out (no audio for `SETTLE_S`): the turn goes into the
        transcript, and an action a tool chose is carried out."""
        action, turn = self._pending, self._turn
        if turn.last_audio is None or asyncio.get_running_loop().time() - turn.last_audio < SETTLE_S:
            return False
        if self.replying:
            return False  # audio stopped short of the text: a stall (the chain judges it), not the end
        if turn.said and (turn.record is None or turn.record.secretary_text != turn.said):
            turn.write(call, self.name)
        if action is None:
            return False
        self._pending = None
        if action.type is ActionType.TAKE_MESSAGE:
            turn.write(call, self.name)
            call.lifecycle.act(action)
            self._taking_message = True
            self._message_audio.start()
            call.playback.enqueue(beep(self._rate), "", "beep")
            return False
        turn.write(call, self.name)
        self._done = True
        await call.finish(action)
        return True

    async def _message_taken(self, call: CallContext, message: str) -> bool:
        self._done = True
        await thank_for_message(
            call, self._runtime, self._config, self._prompts, self._rate, message, self._message_audio.take()
        )
        return True

    # -- for the engine chain -------------------------------------------------------------------------------

    @property
    def replying(self) -> bool:
        """Audio of the reply has come, but less than its text needs at a brisk pace."""
        turn = self._turn
        if turn.last_audio is None or not turn.said or self._done:
            return False
        return turn.audio_s < len(turn.said.split()) / WORDS_PER_S

    @property
    def quiet_s(self) -> float:
        if not self.replying:
            return 0.0
        return asyncio.get_running_loop().time() - self._last_message

    def handoff(self, interruption: Interruption) -> Handoff:
        return self._turn.handoff(interruption)

    async def probe(self) -> None:
        url = await self._url()
        async with websockets.connect(url, open_timeout=self._connect_timeout_s) as ws:
            await ws.send(json.dumps({"type": "conversation_initiation_client_data"}))
            await ws.recv()

    async def close(self) -> None:
        self._done = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


def _ws(base: str) -> str:
    return "ws" + base[len("http") :] if base.startswith("http") else base
