"""The WebSocket server FreeSWITCH's `mod_audio_stream` connects to: `ws://<bridge>:8085/stream/{domain}/{call}`.

Before any engine starts, a stream must name a call (the path), carry a valid bearer token (sent by the
module from `STREAM_EXTRA_HEADERS`) when tokens are configured, belong to a domain whose secretary is
enabled, and name a call of no other domain; otherwise it is closed with code 1008 and a reason, and
logged. A stream whose URL carries the console's `test_call` token is a test call from a browser
(`secretary.access.stream_tokens`): the same codec, session and engines, its audio played over the stream
(`module` mode, whatever the domain's), its turns sent back as `voiceai.transcript`, its record's transport
`test`, and no ESL command ever sent for it (a transfer is only reported). A stream that passes is claimed
(`{"type":"voiceai.claimed",…}`, the first text sent back: the Lua script hosting the call falls back to turns
when none comes). Then every binary frame is checked (whole
samples, a sane size, no faster than real time) and handed to the call's `CallSession`; bad frames are dropped
and counted, never fatal to the process or to other calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from http import HTTPStatus
from typing import Any
from uuid import UUID

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.engines.registry import EngineRegistry
from bridge.playback import PlaybackModes
from bridge.prompts import PromptAudio
from bridge.protocol import (
    AudioFrame,
    AudioStreamProtocol,
    DropReason,
    FrameDropped,
    MetadataReceived,
    ProtocolError,
    RealTimeBudget,
    StreamEvent,
    StreamTarget,
    call_claimed,
    parse_path,
)
from bridge.session import CallSession
from freeswitch.esl import EslClient, EslUnavailable
from secretary.access.stream_tokens import (
    TEST_CALL_TOKEN_S,
    accepted_tokens,
    token_matches,
    tokens_required,
    valid_test_call_token,
)
from secretary.errors import NotFound, Refused, SecretaryError
from secretary.runtime import Runtime

log = structlog.get_logger(__name__)
ESL_WAIT_S = 5.0  # how long each wait for a lost ESL link lasts before it is waited for again

POLICY_VIOLATION = 1008
SERVER_ERROR = 1011
MAX_MESSAGE_BYTES = 2**20 + 4096  # larger messages close that one stream (1009); smaller bad ones are dropped


class BridgeServer:
    def __init__(self, runtime: Runtime, engines: EngineRegistry | None = None, esl: EslClient | None = None) -> None:
        self.runtime = runtime
        self.engines = engines or EngineRegistry()
        self.esl = esl
        self.prompts = PromptAudio(runtime)
        self.sessions: dict[str, CallSession] = {}
        self.playback_modes = PlaybackModes()
        self._test_calls: dict[str, float] = {}  # call uuid -> until when its token would still be valid
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self, host: str | None = None, port: int | None = None) -> BridgeServer:
        settings = self.runtime.settings.bridge
        if not tokens_required(settings):
            log.warning(
                "bridge_without_auth",
                detail="no bridge.token_secret or auth_token: any client reaching the port is served",
            )
        self._server = await serve(
            self._handle,
            settings.host if host is None else host,
            settings.port if port is None else port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            open_timeout=settings.handshake_timeout_s,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def close(self) -> None:
        """Stops accepting streams, ends every call (saving its record), and disconnects ESL."""
        if self._server is not None:
            self._server.close(close_connections=False)
        for session in list(self.sessions.values()):
            session.shut_down()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=10)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        if self.esl is not None:
            await self.esl.close()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Past `max_connections` a new socket is answered 503 before anything else (an unauthenticated client
        can't hold the process's descriptors; one that never finishes its request is closed at the handshake
        deadline); then `GET /health` and `GET /metrics` on the bridge's own port."""
        assert self._server is not None
        if len(self._server.connections) >= self.runtime.settings.bridge.max_connections:  # open ones, not this
            self.runtime.metrics.errors.labels("too_many_connections").inc()
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        return self._health(connection, request)

    def _health(self, connection: ServerConnection, request: Request) -> Response | None:
        """`GET /health` and `GET /metrics` on the bridge's own port (it may run without the ivr service)."""
        if request.path == "/metrics":
            response = connection.respond(HTTPStatus.OK, generate_latest(self.runtime.metrics.registry).decode())
            response.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return response
        if request.path != "/health":
            return None
        body = {
            "status": "ok",
            "active_calls": len(self.sessions),
            "esl": self._esl_state(),
            "playback": self.playback_modes.wire(),
        }
        response = connection.respond(HTTPStatus.OK, json.dumps(body) + "\n")
        response.headers["Content-Type"] = "application/json"
        return response

    def _esl_state(self) -> str:
        if self.esl is None:
            return "disabled"
        return "ok" if self.esl.connected else "down"

    # -- one stream ----------------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        structlog.contextvars.clear_contextvars()
        try:
            await self._stream(ws)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _stream(self, ws: ServerConnection) -> None:
        settings = self.runtime.settings.bridge
        try:
            target = parse_path(ws.request.path if ws.request is not None else "")
        except ProtocolError as exc:
            await self._refuse(ws, "bad_path", exc.reason)
            return
        structlog.contextvars.bind_contextvars(call_uuid=str(target.call_uuid), domain_uuid=str(target.domain_uuid))
        if not self._authorized(ws, target):
            await self._refuse(ws, "unauthorized", "missing or invalid bearer token")
            return
        codec = AudioStreamProtocol(target, settings.default_sample_rate, settings.max_frame_bytes)
        first: str | bytes | None = None
        try:
            async with asyncio.timeout(settings.metadata_timeout_s):
                first = await ws.recv()
        except TimeoutError:
            pass
        except ConnectionClosed:
            return  # opened and dropped without a word
        events: list[StreamEvent] = codec.receive(first) if first is not None else [codec.no_metadata()]
        try:
            config = await self.runtime.secretaries.by_uuid(target.domain_uuid)
        except (NotFound, Refused) as exc:
            await self._refuse(ws, exc.code, exc.message)
            return
        except SecretaryError as exc:
            await self._fail(ws, exc)
            return
        test_call = target.test_call is not None  # `_authorized` has checked its token
        if test_call:
            config = config.model_copy(update={"playback_mode": "module"})
        call_uuid = str(target.call_uuid)
        if call_uuid in self.sessions:
            await self._refuse(ws, "call_in_progress", "this call already has a stream")
            return
        admitted, esl = await self._admit_call(ws, target)
        if not admitted:
            return
        try:
            await ws.send(call_claimed(call_uuid))  # the script in FreeSWITCH stops waiting to fall back
        except ConnectionClosed:
            return  # it gave up waiting (or the caller left) before the call was served
        metadata = codec.metadata
        assert metadata is not None
        engine = self.engines.build(self.runtime, config, metadata.sample_rate, self.prompts)
        session = CallSession(
            self.runtime, config, target, metadata, ws, engine, self.prompts, esl, modes=self.playback_modes,
            test_call=test_call,
        )  # fmt: skip
        self.sessions[call_uuid] = session
        run = asyncio.create_task(session.run(), name="session")
        vouch = None
        if esl is None and self.esl is not None and not test_call:  # admitted on the store's word: ESL waits
            vouch = asyncio.create_task(self._vouch_when_esl_returns(ws, target, session), name="vouch")
        try:
            dropped: set[DropReason] = set()
            self._apply(events, session, dropped)
            await self._frames(ws, codec, session, run, dropped)
        finally:
            if vouch is not None:
                vouch.cancel()
            session.socket_closed(ws.close_code)
            with contextlib.suppress(Exception):
                await asyncio.shield(run)
            self.sessions.pop(call_uuid, None)

    async def _frames(
        self,
        ws: ServerConnection,
        codec: AudioStreamProtocol,
        session: CallSession,
        run: asyncio.Task[Any],
        dropped: set[DropReason],
    ) -> None:
        settings = self.runtime.settings.bridge
        loop = asyncio.get_running_loop()
        budget = RealTimeBudget(session.sample_rate, settings.flood_allowance_ms / 1000, loop.time())
        limit = settings.max_frame_bytes
        metrics = self.runtime.metrics.dropped_frames
        try:
            async for message in ws:
                size = len(message)
                if type(message) is bytes and 0 < size <= limit and not size & 1:  # the per-frame fast path
                    if budget.admit(size, loop.time()):
                        session.feed(message)
                    else:
                        metrics.labels(DropReason.FLOOD.value).inc()
                        self._note_drop(dropped, DropReason.FLOOD, size)
                else:
                    self._apply(codec.receive(message), session, dropped)
                if run.done():
                    return
        except ConnectionClosed:
            return

    def _apply(self, events: list[StreamEvent], session: CallSession, dropped: set[DropReason]) -> None:
        for event in events:
            if isinstance(event, AudioFrame):
                session.feed(event.pcm)
            elif isinstance(event, FrameDropped):
                self.runtime.metrics.dropped_frames.labels(event.reason.value).inc()
                self._note_drop(dropped, event.reason, event.size)
            elif isinstance(event, MetadataReceived) and event.problems:
                log.warning("stream_metadata", problems=list(event.problems), sample_rate=event.metadata.sample_rate)

    @staticmethod
    def _note_drop(dropped: set[DropReason], reason: DropReason, size: int) -> None:
        if reason not in dropped:  # once per call and reason: a flood must not become a log flood
            dropped.add(reason)
            log.warning("frame_dropped", reason=reason.value, size=size)

    async def _admit_call(self, ws: ServerConnection, target: StreamTarget) -> tuple[bool, EslClient | None]:
        """Tenants are walls: a stream may only name a call of its own domain, or it would overwrite that call's
        state and its actions (transfer, hangup) would reach another tenant's call. It is served when FreeSWITCH
        says the channel is its domain's, or none's, and the call-state store's claim (call uuid → domain) is its
        domain's; when neither FreeSWITCH nor the store can answer, it is not served (1011). A test call
        has no channel: FreeSWITCH is not asked. Closes the stream when refused; returns whether to serve it, and
        the ESL client the call may act through."""
        if target.test_call is not None:
            channel_domain, esl = None, None
        else:
            channel_domain, esl = await self._channel_domain(str(target.call_uuid))
        if channel_domain not in (None, target.domain_uuid):
            await self._refuse(ws, "wrong_domain", "the call belongs to another domain")
            return False, None
        try:
            claimed = await self.runtime.call_states.claim(target.call_uuid, target.domain_uuid)
        except SecretaryError as exc:
            if channel_domain != target.domain_uuid:  # nobody can say whose call it is: never fail open
                await self._fail(ws, exc)
                return False, None
            claimed = True  # FreeSWITCH says the channel is this domain's
        if not claimed:
            await self._refuse(ws, "wrong_domain", "the call belongs to another domain")
        return claimed, esl

    async def _vouch_when_esl_returns(self, ws: ServerConnection, target: StreamTarget, session: CallSession) -> None:
        """A call admitted while ESL was down gets ESL (playback in event mode, transfers) once FreeSWITCH says
        the channel is its domain's (or none's); a stream FreeSWITCH then says is another domain's is closed."""
        assert self.esl is not None
        while not await self.esl.wait_connected(ESL_WAIT_S):
            pass
        while True:
            channel_domain, esl = await self._channel_domain(str(target.call_uuid))
            if esl is not None:
                break
            await self.esl.wait_connected(ESL_WAIT_S)  # it dropped again before it could answer
            await asyncio.sleep(0.1)
        if channel_domain not in (None, target.domain_uuid):
            await self._refuse(ws, "wrong_domain", "FreeSWITCH says the call belongs to another domain")
            return
        log.info("esl_vouched", detail="FreeSWITCH confirmed the call's domain: call control goes over ESL")
        session.attach_esl(esl)

    async def _channel_domain(self, call_uuid: str) -> tuple[UUID | None, EslClient | None]:
        """The channel's `domain_uuid` as FreeSWITCH tells it (None: no such channel, or no domain on it), and the
        ESL client the call may act through: none when FreeSWITCH could not be asked, so that ESL coming back
        mid-call never acts on a channel nobody checked (until `_vouch_when_esl_returns` has checked it)."""
        if self.esl is None or not self.esl.connected:
            return None, None
        try:
            reply = await self.esl.api(f"uuid_getvar {call_uuid} domain_uuid")
        except EslUnavailable:
            return None, None
        try:
            return UUID(reply.reply_text.strip()), self.esl
        except ValueError:
            return None, self.esl  # FreeSWITCH answered: nothing of another tenant under this uuid

    def _authorized(self, ws: ServerConnection, target: StreamTarget) -> bool:
        """The shared `auth_token`, or the token of the domain the path names (its `domain_tokens` entry, or the
        one derived from `token_secret`): a domain's token never opens another domain's stream. A test call:
        the console's token for this domain and call, unexpired (a bad one is refused, never ignored)."""
        settings = self.runtime.settings.bridge
        if target.test_call is not None:
            now = time.time()
            if not valid_test_call_token(settings, target.test_call, target.domain_uuid, target.call_uuid, now):
                return False
            return self._first_use(str(target.call_uuid), now)
        if not tokens_required(settings):
            return True
        header = ws.request.headers.get("Authorization", "") if ws.request is not None else ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return token_matches(token.strip(), accepted_tokens(settings, target.domain_uuid))

    def _first_use(self, call_uuid: str, now: float) -> bool:
        """A test call's token opens one stream: replayed (from a log, a history) it would reopen the call and
        overwrite its record. Remembered while it could still be valid."""
        self._test_calls = {call: until for call, until in self._test_calls.items() if until > now}
        if call_uuid in self._test_calls:
            return False
        self._test_calls[call_uuid] = now + TEST_CALL_TOKEN_S
        return True

    async def _fail(self, ws: ServerConnection, exc: SecretaryError) -> None:
        """A dependency we need to serve the stream safely did not answer: 1011, never served unchecked."""
        log.error("stream_not_served", code=exc.code, reason=exc.message)
        self.runtime.metrics.errors.labels(exc.code).inc()
        await ws.close(SERVER_ERROR, exc.code)

    async def _refuse(self, ws: ServerConnection, code: str, reason: str) -> None:
        log.warning("stream_refused", code=code, reason=reason)
        self.runtime.metrics.errors.labels(code).inc()
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.close(POLICY_VIOLATION, f"{code}: {reason}"[:120])


async def start_bridge(runtime: Runtime) -> BridgeServer:
    """Used by `voiceai serve`: the bridge on the configured port, with its shared ESL connection."""
    esl_settings = runtime.settings.bridge.esl
    esl = EslClient(esl_settings) if esl_settings.enabled else None
    if esl is not None:
        esl.start()
    runtime.esl = esl  # the admin console in this process shows its state and flushes memcache over it
    return await BridgeServer(runtime, esl=esl).start()
