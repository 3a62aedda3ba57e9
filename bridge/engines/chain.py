"""`EngineChain`: a domain's `providers.realtime` chain, in order, ending in the offline pipeline.

A cloud engine serves the call while it keeps its deadlines; when it fails (an error, a dropped socket, a
malformed message) or hangs (no session `realtime_connect_s` after connecting, no voice `realtime_reply_s`
after the caller's turn, silent `realtime_stall_s` in the middle of a reply), the next engine takes over
the same call. Before anything was said that is silent (the next engine greets); mid-call the caller hears
"Sorry, one moment." and the pipeline goes on with the conversation so far: the failed engine's turns
become its history, the part of a reply the caller did not hear yet is spoken by the local voice (a
sentence cut mid-way is not said again), and the caller's words that got no answer are answered — the
chain keeps the caller's audio since the engine last spoke and hands it to the pipeline, so an utterance
is not lost even when the engine never transcribed it. A failed engine is benched in the process's
`ProviderHealth` for the cool-down, so the next calls skip it at once.

While a cloud engine is late with a reply (`late_after_s` after the caller's turn, nothing audible), the
caller hears the filler ("One moment, please.") once per turn. These timers are the engine's
`ReplySupervisor` (`secretary/calls/supervisor.py`), polled every `TICK_S`.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

import structlog

from bridge.engines.base import AudioOut, CallContext, CloudEngine, Handoff, KeyAware, RealtimeEngine
from bridge.engines.pipeline import PipelineEngine, Takeover
from bridge.playback import Interruption
from bridge.prompts import PromptAudio
from secretary.calls.lifecycle import UNTIMED, CallLifecycle, Timings
from secretary.calls.models import CallState, TurnRecord
from secretary.calls.supervisor import Due, ReplySupervisor, ReplyTimers
from secretary.conversation.actions import Action
from secretary.conversation.brain import ChatMessage
from secretary.conversation.conversation import Reply
from secretary.deadlines import ProviderTimeout
from secretary.messages.models import TakenMessage
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm
from secretary.speech.sentences import split_sentences
from secretary.tasks import cancel_and_wait, wait_all
from secretary.tenants.config import SecretaryConfig
from secretary.usage import UsageMeter

log = structlog.get_logger(__name__)

KIND = "realtime"
TICK_S = 0.05
RING_S = 20.0  # caller audio kept since the engine last spoke


class _Watched:
    """The session as a cloud engine sees it, with the chain listening in: when the caller's turn ended,
    when the engine's voice was queued."""

    def __init__(self, call: CallContext, chain: EngineChain) -> None:
        self._call = call
        self._chain = chain
        self.runtime: Runtime = call.runtime
        self.config: SecretaryConfig = call.config
        self.state: CallState = call.state
        self.lifecycle: CallLifecycle = call.lifecycle
        self.sample_rate: int = call.sample_rate

    @property
    def playback(self) -> AudioOut:
        return self

    # AudioOut
    @property
    def speaking(self) -> bool:
        return self._call.playback.speaking

    @property
    def ends_at(self) -> float:
        return self._call.playback.ends_at

    def enqueue(self, pcm: bytes, text: str = "", tag: str = "") -> None:
        if pcm:
            self._chain.voiced()
        self._call.playback.enqueue(pcm, text, tag)

    async def interrupt(self) -> Interruption:
        return await self._call.playback.interrupt()

    async def drained(self) -> None:
        await self._call.playback.drained()

    # CallContext
    def caller_active(self) -> None:
        self._call.caller_active()

    def awaiting_reply(self) -> None:
        self._chain.turn_ended()
        self._call.awaiting_reply()

    def reply_started(self) -> None:
        self._call.reply_started()

    def record_turn(
        self,
        caller_text: str,
        secretary_text: str = "",
        *,
        action: Action | None = None,
        brain: str | None = None,
        heard_text: str | None = None,
        timings: Timings = UNTIMED,
    ) -> TurnRecord:
        return self._call.record_turn(
            caller_text, secretary_text, action=action, brain=brain, heard_text=heard_text, timings=timings
        )

    def note_barge_in(self) -> None:
        self._call.note_barge_in()

    def message_held(self, audio: Pcm) -> AbstractAsyncContextManager[TakenMessage]:
        return self._call.message_held(audio)

    async def take_message(self, message: TakenMessage, transcript: str) -> Reply:
        return await self._call.take_message(message, transcript)

    async def finish(self, action: Action) -> None:
        await self._call.finish(action)


class EngineChain:
    def __init__(
        self,
        runtime: Runtime,
        config: SecretaryConfig,
        sample_rate: int,
        prompts: PromptAudio,
        engines: list[CloudEngine],
    ) -> None:
        """`engines`: the cloud engines, in the chain's order (built for this call, not yet connected)."""
        self._runtime = runtime
        self._config = config
        self._rate = sample_rate
        self._prompts = prompts
        self._engines = engines
        self.name = "+".join([engine.name for engine in engines] + ["pipeline"])
        self._current: RealtimeEngine | None = None
        self._ring = bytearray()
        self._ring_limit = 2 * int(sample_rate * RING_S)
        self._watch: ReplySupervisor | None = None  # the engine serving now
        self._voiced = False  # it has spoken
        self._leftovers: set[asyncio.Future[None]] = set()  # failed engines still closing
        self._loop = asyncio.get_running_loop()

    # -- RealtimeEngine ------------------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if not isinstance(self._current, PipelineEngine):
            self._ring += pcm
            if len(self._ring) > self._ring_limit + self._ring_limit // 4:  # trimmed now and then, not per frame
                del self._ring[: len(self._ring) - self._ring_limit]
        if self._current is not None:
            self._current.feed(pcm)

    async def run(self, call: CallContext) -> None:
        settings = self._runtime.settings.fallback
        usage = UsageMeter(call.state.usage)
        health = self._runtime.providers.health
        local = self._runtime.providers.local_tts
        lines = asyncio.gather(
            self._prompts.audio(local, settings.realtime_lost_text, self._rate),
            self._prompts.audio(local, settings.filler_text, self._rate),
        )  # ready in memory before anything can fail
        takeover: Takeover | None = None
        try:
            for position, engine in enumerate(self._engines):
                name = engine.name
                if not health.available(engine.health_key):
                    usage.skipped(KIND, name)
                    continue
                try:
                    served = await self._serve(engine, call, usage, position)
                except Exception as exc:
                    usage.failure(KIND, name)
                    health.failed(engine.health_key, exc, engine.probe)
                    log.warning("realtime_engine_lost", engine=name, error=str(exc) or type(exc).__name__)
                    if self._watch is not None and (self._voiced or call.state.turns):
                        apology, _filler = await lines
                        takeover = await self._handoff(engine, call, apology)
                        break
                    continue  # nothing was said yet: the next engine greets as if it had been first
                finally:
                    self._current = None
                    self._leftovers.add(asyncio.ensure_future(engine.close()))  # the next engine doesn't wait
                if served:
                    return
        finally:
            await cancel_and_wait(lines)
        if takeover is not None:  # the caller's audio up to now; the pipeline keeps what comes next itself
            takeover = replace(takeover, replay=bytes(self._ring))
            self._ring.clear()
        pipeline = PipelineEngine(self._runtime, self._config, self._rate, self._prompts, takeover=takeover)
        usage.served(KIND, "pipeline", fallback=bool(self._engines))
        self._current = pipeline
        await pipeline.run(call)

    async def close(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            await current.close()
        leftovers, self._leftovers = self._leftovers, set()
        await wait_all(*leftovers)

    async def keys_pressed(self) -> None:
        """Keys reach the engine serving the call when it is `KeyAware` (the pipeline)."""
        current = self._current
        if isinstance(current, KeyAware):
            await current.keys_pressed()

    # -- what the watched engine tells the chain -----------------------------------------------------------

    def voiced(self) -> None:
        """The engine queued audio: the caller's words before now have their answer."""
        self._ring.clear()
        self._voiced = True
        if self._watch is not None:
            self._watch.audio_queued(self._loop.time())

    def turn_ended(self) -> None:
        if self._watch is not None:
            self._watch.caller_finished(self._loop.time())

    # -- serving -------------------------------------------------------------------------------------------

    async def _serve(self, engine: CloudEngine, call: CallContext, usage: UsageMeter, position: int) -> bool:
        """Runs the engine until the conversation ends (True) or it fails (raises)."""
        settings = self._runtime.settings.fallback
        watch = self._watch = ReplySupervisor(
            ReplyTimers(
                filler_after_s=settings.late_after_s,
                give_up_s=settings.realtime_reply_s,
                first_byte_s=settings.realtime_connect_s,  # its first message: the session is ready
                stall_s=settings.realtime_stall_s,  # quiet mid-reply
            )
        )
        watch.provider_started(self._loop.time())
        self._voiced = False
        self._current = engine
        task = asyncio.create_task(engine.run(_Watched(call, self)), name=f"engine {engine.name}")
        try:
            while True:
                await asyncio.wait({task}, timeout=TICK_S)
                if task.done():
                    task.result()  # raises the engine's failure
                    return True
                now = self._loop.time()
                if not watch.started and engine.connected.is_set():
                    watch.provider_message(now)
                    usage.served(KIND, engine.name, fallback=position > 0)
                    if not self._voiced and not call.state.turns and not watch.awaiting:
                        watch.greeting_owed(now)
                elif watch.started:  # its last message, counted only while a reply of its own is unfinished
                    watch.provider_message(now - engine.quiet_s)
                for due in watch.poll(now):
                    if due is Due.NO_FIRST_BYTE:
                        raise ProviderTimeout(f"{engine.name} sent nothing within {settings.realtime_connect_s}s")
                    if due is Due.STALLED:
                        raise ProviderTimeout(f"{engine.name} stalled mid-reply ({settings.realtime_stall_s}s)")
                    if due is Due.GIVE_UP:
                        what = "reply" if self._voiced or call.state.turns else "greet"
                        raise ProviderTimeout(f"{engine.name} did not {what} within {settings.realtime_reply_s}s")
                    if due is Due.FILLER:
                        filler = await self._prompts.audio(
                            self._runtime.providers.local_tts, settings.filler_text, self._rate
                        )
                        call.playback.enqueue(filler, settings.filler_text, "filler")
                        usage.add("fillers")
        finally:
            if not task.done():
                task.cancel()  # its socket's closing handshake finishes in the background
                self._leftovers.add(task)

    async def _handoff(self, engine: CloudEngine, call: CallContext, apology: bytes) -> Takeover:
        """Stops what the failed engine was saying and sets the pipeline up to go on from there."""
        cut = Handoff()
        if engine.replying:  # stop the broken reply; a complete one plays out, the apology after it
            cut = engine.handoff(await call.playback.interrupt())
        remainder = _unheard(cut) if cut.heard_text else ""
        history = [ChatMessage(role="assistant", content=self._config.opening_line)]
        for turn in call.state.turns:
            if turn.caller_text:
                history.append(ChatMessage(role="user", content=turn.caller_text))
            said = turn.secretary_text
            if turn.heard_text is not None and turn.heard_text != said:
                said = call.lifecycle.prompts.cut_off(turn.heard_text)
            if said:
                history.append(ChatMessage(role="assistant", content=said))
        if cut.heard_text:  # the caller heard part of a reply: that turn happened, and the rest follows
            call.record_turn(
                cut.caller_text,
                cut.said_text,
                heard_text=" ".join(filter(None, [cut.heard_text, remainder])),
                brain=engine.name,
            )
            if cut.caller_text:
                history.append(ChatMessage(role="user", content=cut.caller_text))
            history.append(ChatMessage(role="assistant", content=" ".join(filter(None, [cut.heard_text, remainder]))))
        log.info("realtime_takeover", engine=engine.name, heard=cut.heard_text, remainder=remainder)
        return Takeover(history, len(call.state.turns), b"", remainder, apology)


def _unheard(cut: Handoff) -> str:
    """The sentences of the cut reply the caller has not started hearing (a sentence cut mid-way is not
    said again)."""
    heard_words = len(cut.heard_text.split())
    words = 0
    rest: list[str] = []
    for sentence in split_sentences(cut.said_text):
        if words >= heard_words:
            rest.append(sentence)
        words += len(sentence.split())
    return " ".join(rest)
