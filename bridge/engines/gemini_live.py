"""Gemini Live (the Live API's `BidiGenerateContent` WebSocket) as a realtime engine.

Why not the official `google-genai` SDK: with an API key it rewrites every Live endpoint to `wss://` (TLS),
so it cannot reach a plain local test server, and it would bring a dozen dependencies for what is a small
JSON protocol. This speaks the documented protocol with `websockets`:

- `wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.
  BidiGenerateContent`, the key in `x-goog-api-key`.
- `setup` first (model, `responseModalities: ["AUDIO"]`, the voice, the LLM brain's instructions as
  `systemInstruction`, the tools as `functionDeclarations`, input and output transcription, automatic
  activity detection); nothing else is sent before `setupComplete`.
- Caller audio: `realtimeInput.audio`, 16 kHz L16 (`audio/pcm;rate=16000`); the model answers in
  `serverContent.modelTurn` parts of 24 kHz L16, resampled to the call rate.
- `serverContent.interrupted`: the caller barged in (the playback stops); `turnComplete` ends a reply;
  `inputTranscription` / `outputTranscription` give the transcript; `toolCall.functionCalls` are answered
  with `toolResponse.functionResponses` (decisions resolved by the core's `Conversation`); `usageMetadata`
  counts tokens; `goAway` announces the end of the connection.
- The greeting: a `clientContent` turn asking for the domain's opening line word for word.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

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

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
DEFAULT_MODEL = "gemini-live-2.5-flash-preview"
DEFAULT_VOICE = "Puck"
IN_FORMAT = "pcm_16000"
OUT_FORMAT = "pcm_24000"
CLOSE_S = 0.5  # a failed provider gets this long for the closing handshake, not websockets' 10 s
SEND_MS = 100


class GeminiFailed(ProviderFailed):
    def __init__(self, message: str, status_code: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


def _gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON schema → the Live API's OpenAPI subset (upper-case types)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.upper()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _gemini_schema(prop) for name, prop in value.items()}
        else:
            out[key] = value
    return out


class GeminiLiveEngine:
    name = "gemini_live"

    def __init__(
        self,
        runtime: Runtime,
        config: SecretaryConfig,
        sample_rate: int,
        prompts: PromptAudio,
        *,
        api_key: str,
        model: str = DEFAULT_MODEL,
        voice: str = DEFAULT_VOICE,
        base_url: str = DEFAULT_BASE_URL,
        options: dict[str, Any] | None = None,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._runtime = runtime
        self._config = config
        self._rate = sample_rate
        self._prompts = prompts
        self._key = api_key
        self._model = model if model.startswith("models/") else f"models/{model}"
        self._voice = voice
        base = base_url.rstrip("/")
        self._url = ("ws" + base[len("http") :] if base.startswith("http") else base) + PATH
        self._options = options or {}
        self._connect_timeout_s = connect_timeout_s
        self._conversation = Conversation(config, FrontDesk())
        self._tools = ToolDesk(runtime, config, self._conversation)
        self._input = WireAudio(IN_FORMAT, sample_rate)
        self._output = WireAudio(OUT_FORMAT, sample_rate)
        self._ready = False
        self._outgoing = bytearray()
        self._wake = asyncio.Event()
        self._usage = UsageMeter()
        self._turn = AgentTurn("gl-0")
        self._turns = 0
        self._replying = False
        self._pending: Action | None = None
        self._taking_message = False
        self._message_audio = MessageAudio(sample_rate, config.recording.message_max_seconds)
        self._done = False
        self._last_message = 0.0
        self._ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.health_key = f"realtime:{self.name}"

    @classmethod
    def from_request(cls, request: EngineRequest) -> GeminiLiveEngine:
        spec = request.spec
        identity = request.runtime.providers.credentials.identify(spec, request.config, "gemini_live")
        key = identity.credential.value
        if not key:
            raise EngineUnavailable("gemini_live needs an API key: none this domain may use (api_key_ref)")
        base_url = spec.base_url or DEFAULT_BASE_URL
        engine = cls(
            request.runtime,
            request.config,
            request.sample_rate,
            request.prompts,
            api_key=key,
            model=spec.model or DEFAULT_MODEL,
            voice=spec.voice or DEFAULT_VOICE,
            base_url=base_url,
            options=dict(spec.options),
            connect_timeout_s=max(request.runtime.settings.fallback.realtime_connect_s * 3, 3.0),
        )
        engine.health_key = identity.health_key("realtime", spec)
        return engine

    # -- audio in ------------------------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        self._message_audio.feed(pcm)
        if not self._ready or self._done:
            return
        self._outgoing += self._input.outbound(pcm)
        if len(self._outgoing) >= SEND_MS * 32:  # 16 kHz L16: 32 bytes a millisecond
            self._wake.set()

    async def _sender(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._outgoing:
                data = base64.b64encode(self._outgoing).decode("ascii")
                self._usage.add(f"realtime.{self.name}.caller_seconds", round(len(self._outgoing) / 32000, 3))
                self._outgoing.clear()
                audio = {"data": data, "mimeType": "audio/pcm;rate=16000"}
                await ws.send(json.dumps({"realtimeInput": {"audio": audio}}))

    # -- the conversation ----------------------------------------------------------------------------------

    def _setup(self) -> dict[str, Any]:
        declarations = []
        for tool in realtime_tools.definitions(self._config):
            declaration = {"name": tool["name"], "description": tool["description"]}
            if tool["parameters"].get("properties"):
                declaration["parameters"] = _gemini_schema(tool["parameters"])
            declarations.append(declaration)
        detection: dict[str, Any] = {
            "silenceDurationMs": int(self._options.get("silence_duration_ms", 500)),
            "prefixPaddingMs": int(self._options.get("prefix_padding_ms", 300)),
        }
        voice = {"prebuiltVoiceConfig": {"voiceName": self._voice}}
        return {
            "setup": {
                "model": self._model,
                "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {"voiceConfig": voice}},
                "systemInstruction": {"parts": [{"text": realtime_tools.instructions(self._config)}]},
                "tools": [{"functionDeclarations": declarations}],
                "inputAudioTranscription": {},
                "outputAudioTranscription": {},
                "realtimeInputConfig": {"automaticActivityDetection": detection},
            }
        }

    async def run(self, call: CallContext) -> None:
        self._usage = UsageMeter(call.state.usage)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                ws = await websockets.connect(
                    self._url,
                    additional_headers={"x-goog-api-key": self._key},
                    max_size=None,
                    open_timeout=None,
                    close_timeout=CLOSE_S,
                )
        except InvalidStatus as exc:
            status = exc.response.status_code
            retry = exc.response.headers.get("Retry-After")
            raise GeminiFailed(
                f"Gemini Live refused the connection (HTTP {status})",
                status,
                float(retry) if retry and retry.isdigit() else None,
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise GeminiFailed(f"Gemini Live is unreachable: {type(exc).__name__}") from None
        self._ws = ws
        sender: asyncio.Task[None] | None = None
        try:
            await ws.send(json.dumps(self._setup()))
            loop = asyncio.get_running_loop()
            while True:
                try:
                    raw = await ws.recv()
                except ConnectionClosed as exc:
                    if self._done:
                        return
                    code = exc.rcvd.code if exc.rcvd else 1006
                    reason = exc.rcvd.reason if exc.rcvd else ""
                    raise GeminiFailed(f"Gemini Live closed the session (code {code} {reason})".strip()) from None
                self._last_message = loop.time()
                try:
                    message = json.loads(raw)
                except json.JSONDecodeError:
                    raise GeminiFailed("Gemini Live sent a malformed message") from None
                if not isinstance(message, dict):
                    continue
                if "setupComplete" in message and not self._ready:
                    self._ready = True
                    self.connected.set()
                    sender = asyncio.create_task(self._sender(ws), name="gemini-sender")
                    greeting = call.lifecycle.greeting()
                    await self._say_exactly(ws, greeting)
                elif await self._handle(call, ws, message):
                    return
        finally:
            await cancel_and_wait(sender)
            self._ws = None
            await ws.close()

    async def _say_exactly(self, ws: ClientConnection, text: str) -> None:
        turn = {"role": "user", "parts": [{"text": f"Say exactly these words: {text}"}]}
        await ws.send(json.dumps({"clientContent": {"turns": [turn], "turnComplete": True}}))

    async def _handle(self, call: CallContext, ws: ClientConnection, message: dict[str, Any]) -> bool:
        """One server message; True when the conversation is over."""
        content = message.get("serverContent")
        if isinstance(content, dict):
            return await self._content(call, content)
        tool_call = message.get("toolCall")
        if isinstance(tool_call, dict):
            await self._tool_calls(ws, tool_call.get("functionCalls") or [])
        usage = message.get("usageMetadata")
        if isinstance(usage, dict):
            self._usage.add(f"realtime.{self.name}.prompt_tokens", int(usage.get("promptTokenCount") or 0))
            self._usage.add(f"realtime.{self.name}.response_tokens", int(usage.get("responseTokenCount") or 0))
        if "goAway" in message:
            log.warning("gemini_go_away", time_left=(message.get("goAway") or {}).get("timeLeft"))
        return False

    async def _content(self, call: CallContext, content: dict[str, Any]) -> bool:
        heard_caller = (content.get("inputTranscription") or {}).get("text")
        if heard_caller:
            call.caller_active()
            if self._taking_message:
                return await self._message_taken(call, str(heard_caller).strip())
            if self._turn.said or self._turn.audio_s:  # the model had its say: this is a new caller turn
                self._turn.write(call, self.name)
                self._turns += 1
                self._turn = AgentTurn(f"gl-{self._turns}")
            self._turn.caller_text = " ".join(filter(None, [self._turn.caller_text, str(heard_caller).strip()]))
            call.awaiting_reply()
        said = (content.get("outputTranscription") or {}).get("text")
        if said:
            self._turn.said = " ".join(filter(None, [self._turn.said, str(said).strip()]))
        for part in (content.get("modelTurn") or {}).get("parts") or []:
            blob = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(blob, dict) and str(blob.get("mimeType", "")).startswith("audio/pcm"):
                self._play(call, str(blob.get("data", "")))
        if content.get("interrupted"):
            await self._barge_in(call)
        if content.get("turnComplete"):
            self._replying = False
            return await self._turn_complete(call)
        return False

    def _play(self, call: CallContext, data: str) -> None:
        if self._done:
            return
        try:
            audio = base64.b64decode(data)
        except ValueError:
            return
        self._replying = True
        seconds = self._output.seconds(audio)
        self._turn.audio_s += seconds
        self._usage.add(f"realtime.{self.name}.reply_seconds", round(seconds, 3))
        call.playback.enqueue(self._output.inbound(audio), "", self._turn.tag)
        call.reply_started()

    async def _barge_in(self, call: CallContext) -> None:
        self._replying = False
        interruption = await call.playback.interrupt()
        turn = self._turn
        played = interruption.played_ms.get(turn.tag, 0) / 1000
        if turn.audio_s and played < turn.audio_s - 0.05:
            call.note_barge_in()
            turn.cut_at(played)
            log.info("barge_in", heard=turn.heard)
            if turn.record is not None:
                self._turn.write(call, self.name)

    async def _tool_calls(self, ws: ClientConnection, calls: list[Any]) -> None:
        responses = []
        for function_call in calls:
            if not isinstance(function_call, dict):
                continue
            name = str(function_call.get("name", ""))
            args = function_call.get("args") or {}
            result = await self._tools.call(name, args if isinstance(args, dict) else {})
            if result.action is not None:
                self._pending = result.action
            if result.decided:
                self._turn.action = result.action or Action.continue_()
            responses.append({"id": function_call.get("id"), "name": name, "response": result.output})
        await ws.send(json.dumps({"toolResponse": {"functionResponses": responses}}))

    async def _turn_complete(self, call: CallContext) -> bool:
        self._turn.write(call, self.name)
        action, self._pending = self._pending, None
        if action is None:
            return False
        if action.type is ActionType.TAKE_MESSAGE:
            call.lifecycle.act(action)
            self._taking_message = True
            self._message_audio.start()
            call.playback.enqueue(beep(self._rate), "", "beep")
            return False
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
        return self._replying and not self._done

    @property
    def quiet_s(self) -> float:
        if not self._replying or self._done:
            return 0.0
        return asyncio.get_running_loop().time() - self._last_message

    def handoff(self, interruption: Interruption) -> Handoff:
        return self._turn.handoff(interruption)

    async def probe(self) -> None:
        async with websockets.connect(
            self._url, additional_headers={"x-goog-api-key": self._key}, open_timeout=self._connect_timeout_s
        ) as ws:
            await ws.send(json.dumps(self._setup()))
            await ws.recv()

    async def close(self) -> None:
        self._done = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
