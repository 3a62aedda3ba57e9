"""`TurnTaking`: the pipeline's turn-taking in one sans-I/O state machine.

In the spirit of h11 and `ReplySupervisor` (`secretary/calls/supervisor.py`) it never waits, never reads a
clock and touches no audio: `PipelineEngine` reports what happened — the segmenter's events (`segment`), a
streamed transcript (`streamed`), the stream opened or lost, keys, the reply audible, finishing or over, what
a barge-in cut (`cut`), a takeover and its replayed audio — with the facts it needs from outside (whether the
playback is speaking), and carries out the actions it gets back, in order. Every transition is here; the
engine keeps the tasks, STT, TTS, playback and timers.

Phases (`Phase`):
- LISTENING: no reply in progress (the playback may still be saying the greeting or the end of a reply).
- ANSWERING: a reply task runs (STT, the brain, the first TTS); nothing of it is audible yet.
- REPLYING: its audio is queued for the caller.
- INTERRUPTING: a barge-in is stopping the playback and the reply; `cut` says what the caller heard.
- FINISHING: the reply ended the conversation; its farewell (or transfer announcement, or the message's
  thanks) plays to the end; the caller's speech and keys change nothing (the reply's end still ends it).
- ENDED: the conversation is over.

The rules:
- Barge-in: speech confirmed (`SpeechStarted`) or a key while the playback speaks or a reply is in progress,
  but never while finishing. A reply cut before the caller heard any of it and before it was written down is
  carried: answered together with the caller's next turn (the audio joined; with a streamed transcript, the
  cut turn's words first).
- A turn that ends while a reply is in progress (the caller went on talking) barges in first, then the whole
  of it is answered.
- Early STT: started on a pause (`SpeechPaused`) only when listening with nothing carried; withdrawn when the
  caller resumes; used by the turn if it ends with exactly that audio (not when a carried turn joins it, nor
  when the transcript came streamed).
- Streaming STT (Deepgram): while its stream is live the turn ends on its transcript; our VAD's pauses are
  ignored and a turn the VAD closes beyond the position the last transcript covered is kept as unanswered
  (both clocks run; a second one joins it) until the transcript comes, or the stream is lost: then it is
  answered from the VAD's audio (a transcript of it already on its way is dropped) and the pipeline goes on
  with its VAD and Whisper.
- Takeover: the apology is held while the caller is speaking and opens the answer to their words (it is that
  turn's filler); the utterances in the replayed audio are answered as one turn.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from secretary.speech.audio import Pcm
from secretary.speech.utterances import SegmentEvent, SpeechPaused, SpeechResumed, SpeechStarted, UtteranceEnded


class Phase(StrEnum):
    LISTENING = "listening"
    ANSWERING = "answering"
    REPLYING = "replying"
    INTERRUPTING = "interrupting"
    FINISHING = "finishing"
    ENDED = "ended"


class Stream(StrEnum):
    """The streaming STT's part in ending turns."""

    OFF = "off"  # none (yet): turns end on our VAD
    LIVE = "live"  # turns end on its transcripts
    LOST = "lost"  # it failed mid-call: turns end on our VAD again


class IllegalTransition(RuntimeError):
    """An event the current phase cannot have: the driver broke the order (a cut reply that went on, say)."""


# -- what the driver is told to do ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerActive:
    """The caller is speaking (`call.caller_active()`)."""


@dataclass(frozen=True, slots=True)
class CallerFinished:
    """The caller's turn ended: `call.caller_active()` (their clock starts with the reply, `StartReply`).
    `streamed`: the streaming STT answered, so its clock stops."""

    streamed: bool


@dataclass(frozen=True, slots=True)
class AwaitTranscript:
    """Our VAD closed a turn the streaming STT has not answered yet: the caller's clock and the provider's
    (its end-of-turn deadline) start."""


@dataclass(frozen=True, slots=True)
class StartEarlyStt:
    """Transcribe `audio` now: it is the turn, if the turn ends."""

    audio: Pcm


@dataclass(frozen=True, slots=True)
class DropEarlyStt:
    """Cancel the early STT."""


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Stop the playback, cancel the reply in progress (if any), then report what was heard with `cut`."""


@dataclass(frozen=True, slots=True)
class StartReply:
    """Answer the caller: `audio` to transcribe, or `text` already transcribed (streamed); a carried turn is
    merged in already. `early`: the early STT's transcript is this turn's (otherwise cancel it). `apology`:
    a takeover's held apology to play first (it stands in for the filler), or b"" for none."""

    audio: Pcm
    text: str | None
    early: bool
    apology: bytes = b""


@dataclass(frozen=True, slots=True)
class PlayApology:
    """A takeover with the caller silent: the apology plays at once."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class AbandonStream:
    """The streaming STT failed mid-call: close it and account for it; our VAD and Whisper take over."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class End:
    """The conversation is over: the engine's `run` returns."""


Action = (
    CallerActive
    | CallerFinished
    | AwaitTranscript
    | StartEarlyStt
    | DropEarlyStt
    | BargeIn
    | StartReply
    | PlayApology
    | AbandonStream
    | End
)


@dataclass(frozen=True, slots=True)
class Carry:
    """A turn whose reply was cut before the caller heard any of it: answered with the next turn."""

    audio: Pcm
    text: str  # its words, when known (streamed, or transcribed before the cut)


@dataclass(frozen=True, slots=True)
class Cut:
    """What a barge-in came to: `carried`, the cut turn waits for the next one (nothing to write down);
    `then`, what to do now (answer the turn that barged in)."""

    carried: bool
    then: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class _PendingTurn:
    """A turn to answer: its audio, or its streamed text."""

    audio: Pcm
    text: str | None


REPLY_IN_PROGRESS = frozenset({Phase.ANSWERING, Phase.REPLYING})
_TAKING_EVENTS = frozenset({Phase.LISTENING, Phase.ANSWERING, Phase.REPLYING, Phase.FINISHING})


class TurnTaking:
    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._phase = Phase.LISTENING
        self._reply: _PendingTurn | None = None  # what the reply in progress (or the one being cut) answers
        self._then: _PendingTurn | None = None  # a turn to answer once the barge-in is over
        self._carry: Carry | None = None
        self._early: Pcm | None = None  # the audio an early STT runs on
        self._stream = Stream.OFF
        self._covered_ms = 0.0  # stream position the streaming STT's last transcript covered
        self._unanswered: Pcm | None = None  # VAD-closed speech the streaming STT has not answered yet
        self._answered_for_the_stream = False  # the stream was lost and our VAD's audio answered in its place
        self._apology = b""  # a takeover's apology held until the caller finishes speaking
        self._begun = False  # a reply was started, or a takeover begun

    # -- the state, read-only --------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def replying(self) -> bool:
        """A reply is in progress (answering or audible)."""
        return self._phase in REPLY_IN_PROGRESS

    @property
    def ending(self) -> bool:
        """The conversation is finishing or over: no filler, no new reply."""
        return self._phase in (Phase.FINISHING, Phase.ENDED)

    @property
    def carry(self) -> Carry | None:
        return self._carry

    @property
    def early(self) -> Pcm | None:
        return self._early

    @property
    def stream(self) -> Stream:
        return self._stream

    @property
    def covered_ms(self) -> float:
        return self._covered_ms

    @property
    def unanswered(self) -> Pcm | None:
        return self._unanswered

    @property
    def apology(self) -> bytes:
        return self._apology

    # -- the caller ------------------------------------------------------------------------------------------

    def segment(self, event: SegmentEvent, *, speaking: bool) -> list[Action]:
        """One of the segmenter's events; `speaking`: the playback is speaking now."""
        self._taking_events()
        if self._phase is Phase.FINISHING:
            return []  # the farewell or the transfer announcement plays to the end
        if isinstance(event, SpeechStarted):
            if speaking or self.replying:
                return [CallerActive(), *self._barge_in()]
            return [CallerActive()]
        if isinstance(event, SpeechResumed):  # the pause was not the end of the turn
            return self._drop_early()
        if self._stream is Stream.LIVE:  # the turn ends on the provider's transcript
            if isinstance(event, UtteranceEnded) and event.end_ms > self._covered_ms:
                # kept until the transcript comes, or the stream is lost (a second turn joins the first)
                self._unanswered = event.audio if self._unanswered is None else self._unanswered + event.audio
                return [AwaitTranscript()]
            return []
        if isinstance(event, SpeechPaused):
            if self._carry is not None or self._phase is not Phase.LISTENING:
                return []
            actions = self._drop_early()
            self._early = event.audio
            return [*actions, StartEarlyStt(event.audio)]
        if isinstance(event, UtteranceEnded):
            return self._turn_over(_PendingTurn(event.audio, None), streamed=False)
        return []  # noise

    def streamed(self, text: str, position_ms: float) -> list[Action]:
        """The streaming STT ended the caller's turn with `text`, at stream position `position_ms`."""
        self._taking_events()
        if self._phase is Phase.FINISHING or self._answered_for_the_stream:
            return []  # (a transcript queued before the loss: the VAD's audio of those words is answered)
        self._covered_ms = position_ms
        self._unanswered = None
        return self._turn_over(_PendingTurn(Pcm(b"", self._rate), text), streamed=True)

    def keys_pressed(self, *, speaking: bool) -> list[Action]:
        """The caller pressed keys: they stop the secretary (the lifecycle answers them)."""
        self._taking_events()
        if self._phase is not Phase.FINISHING and (speaking or self.replying):
            return self._barge_in()
        return []

    # -- the streaming STT -----------------------------------------------------------------------------------

    def stream_opened(self) -> list[Action]:
        """Turns end on the stream's transcripts from now on: an early STT of our VAD's is of no use."""
        if self._stream is not Stream.OFF:
            raise IllegalTransition(f"the stream opened again ({self._stream})")
        self._stream = Stream.LIVE
        return self._drop_early()

    def stream_lost(self, error: BaseException) -> list[Action]:
        """The stream failed (an error, or no transcript in time): a turn our VAD closed that got none is
        answered from the VAD's audio."""
        self._taking_events()
        if self._stream is not Stream.LIVE:
            return []
        self._stream = Stream.LOST
        pending, self._unanswered = self._unanswered, None
        if pending is None or self._phase is Phase.FINISHING:
            return [AbandonStream(error)]
        self._answered_for_the_stream = True
        return [AbandonStream(error), *self._reply_to(_PendingTurn(pending, None))]

    # -- the reply -------------------------------------------------------------------------------------------

    def reply_audible(self) -> None:
        """The reply's first audio is queued for the caller."""
        self._require(REPLY_IN_PROGRESS, "audio of no reply")
        self._phase = Phase.REPLYING

    def finishing(self) -> None:
        """The reply ends the conversation: its last words play to the end."""
        self._require(REPLY_IN_PROGRESS, "a farewell without a reply")
        self._phase = Phase.FINISHING

    def reply_over(self, *, ended: bool) -> list[Action]:
        """The reply task is over (done or cancelled, not cut); `ended`: it ended the conversation."""
        self._require(REPLY_IN_PROGRESS | {Phase.FINISHING}, "the end of no reply")
        if self._phase is Phase.FINISHING:
            if not ended:  # cancelled while finishing: the call is ending anyway
                return []
            self._phase = Phase.ENDED
            return [End()]
        if ended:
            raise IllegalTransition("the conversation ended without finishing")
        self._phase, self._reply = Phase.LISTENING, None
        return []

    def cut(self, *, heard: bool, recorded: bool, caller_text: str = "") -> Cut:
        """What the `BargeIn` stopped: `heard`, the caller heard some of the reply; `recorded`, the reply had
        been written down (it was complete); `caller_text`, the cut turn's transcript if it was made."""
        self._require({Phase.INTERRUPTING}, "a cut without a barge-in")
        reply, self._reply = self._reply, None
        carried = reply is not None and not recorded and not heard
        if carried:
            assert reply is not None
            self._carry = Carry(reply.audio, caller_text or reply.text or "")
        self._phase = Phase.LISTENING
        then, self._then = self._then, None
        return Cut(carried, () if then is None else (self._start(then),))

    # -- taking over from another engine ----------------------------------------------------------------------

    def take_over(self, apology: bytes, *, caller_speaking: bool) -> list[Action]:
        """The pipeline continues a call another engine started: "Sorry, one moment." now, or, while the caller
        is speaking, as the opening of the answer to their words."""
        if self._begun or self._phase is not Phase.LISTENING:
            raise IllegalTransition("a takeover mid-call")
        self._begun = True
        if caller_speaking:
            self._apology = apology
            return []
        return [PlayApology(apology)]

    def replayed(self, events: Iterable[SegmentEvent]) -> list[Action]:
        """The segmenter's events on the caller's audio since the other engine last spoke: the utterances in
        it are answered, as one turn."""
        self._require({Phase.LISTENING}, "a replay mid-reply")
        actions: list[Action] = []
        audio: Pcm | None = None
        for event in events:
            if isinstance(event, SpeechStarted):
                actions.append(CallerActive())
            elif isinstance(event, UtteranceEnded):
                audio = event.audio if audio is None else audio + event.audio
        if audio is None:
            return actions
        return [*actions, CallerFinished(streamed=False), self._start(_PendingTurn(audio, None))]

    # -- the transitions ---------------------------------------------------------------------------------------

    def _turn_over(self, turn: _PendingTurn, *, streamed: bool) -> list[Action]:
        return [CallerFinished(streamed), *self._reply_to(turn)]

    def _reply_to(self, turn: _PendingTurn) -> list[Action]:
        """A reply in progress is cut first (the caller went on talking: the whole of it is answered)."""
        if self.replying:
            self._then = turn
            return self._barge_in()
        return [self._start(turn)]

    def _barge_in(self) -> list[Action]:
        self._phase = Phase.INTERRUPTING  # (`_reply`: the reply being cut, or None when only playback stops)
        return [BargeIn()]

    def _start(self, turn: _PendingTurn) -> StartReply:
        audio, text, carry = turn.audio, turn.text, self._carry
        if carry is not None:
            if text is None:
                audio = carry.audio + audio
            else:  # streamed: the cut turn's words go first
                text = " ".join(filter(None, [carry.text, text]))
            self._carry = None
        early = self._early is not None and carry is None and text is None
        self._early = None
        apology, self._apology = self._apology, b""
        self._reply = _PendingTurn(audio, text)
        self._phase = Phase.ANSWERING
        self._begun = True
        return StartReply(audio, text, early, apology)

    def _drop_early(self) -> list[Action]:
        if self._early is None:
            return []
        self._early = None
        return [DropEarlyStt()]

    def _taking_events(self) -> None:
        self._require(_TAKING_EVENTS, "an event")

    def _require(self, phases: Collection[Phase], what: str) -> None:
        if self._phase not in phases:
            raise IllegalTransition(f"{what} while {self._phase}")
