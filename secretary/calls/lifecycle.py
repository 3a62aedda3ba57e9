"""`CallLifecycle`: the life of one call, for both transports and every realtime engine, free of I/O.

In the spirit of h11: the transport (the v1 HTTP flow, the bridge's session) and the engines report what
happened — the greeting is out, the caller finished a turn, a reply was said, a message was left, keys were
pressed, the line went quiet, the call ended — and the lifecycle moves the call's phase, writes its turn
records, decides its outcome and the fixed replies of its limits (turns, duration, caller silence, a failing
secretary). It never awaits and never reads a clock: times are passed in. What it returns is said and done by
its caller: speaking, saving, transferring, delivering the message are I/O, and stay with the transports
(`secretary.messages.taking` hands a message to the courier).

Everything it knows lives in the `CallState` it wraps, so a v1 call can continue in another process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from secretary.calls.models import CallPhase, CallRecord, CallState, Outcome, TurnRecord
from secretary.calls.prompts import Prompts, prompts_for
from secretary.conversation.actions import Action, ActionType
from secretary.conversation.brain import Brain, BrainRequest, ChatMessage
from secretary.conversation.conversation import Conversation, KnowledgeSearch, Reply
from secretary.conversation.front_desk import FrontDesk
from secretary.conversation.keys import BRAIN as KEYS_BRAIN
from secretary.conversation.keys import caller_text as keys_text
from secretary.conversation.keys import key_reply
from secretary.conversation.meaning import MeaningModel
from secretary.tenants.config import SecretaryConfig

EndedBy = Literal["caller", "transfer", "hangup", "fallback"]

# The brains of the replies the lifecycle makes itself: fixed texts, worth caching as audio.
SILENCE, TIME_LIMIT, FAULT, MESSAGE = "silence", "time_limit", "fault", "message"
FIXED_BRAINS = frozenset({SILENCE, TIME_LIMIT, FAULT, MESSAGE, KEYS_BRAIN, "front_desk", "turn_limit"})


@dataclass(frozen=True, slots=True)
class Timings:
    """A turn's stages in milliseconds (None: the stage did not run, or is not known to this engine)."""

    stt_ms: int | None = None
    brain_ms: int | None = None
    tts_ms: int | None = None
    total_ms: int | None = None


UNTIMED = Timings()


class CallLifecycle:
    def __init__(self, state: CallState, config: SecretaryConfig, *, max_call_seconds: int | None = None) -> None:
        """`max_call_seconds`: the deployment's cap on the domain's own limit (None: the domain's)."""
        self.state = state
        self.config = config
        self.prompts: Prompts = prompts_for(config.language)
        self._max_call_s = min(config.max_call_seconds, max_call_seconds or config.max_call_seconds)
        self._conversation: Conversation | None = None

    # -- phases --------------------------------------------------------------------------------------------

    @property
    def phase(self) -> CallPhase:
        return self.state.phase

    @property
    def over(self) -> bool:
        """The conversation is decided (a transfer or a hangup on its way, or the call ended)."""
        return self.state.phase in (CallPhase.TRANSFERRING, CallPhase.ENDING, CallPhase.ENDED)

    @property
    def taking_message(self) -> bool:
        return self.state.phase is CallPhase.TAKING_MESSAGE

    @property
    def answers_keys(self) -> bool:
        """Keys mean something only in conversation: while a message is left they are part of it."""
        return not self.over and not self.taking_message

    def _move(self, phase: CallPhase) -> None:
        if self.state.phase is CallPhase.ENDED:
            return  # late reports (a reply task finishing after the hangup) change nothing
        if self.over and phase in (CallPhase.LISTENING, CallPhase.THINKING, CallPhase.SPEAKING):
            return  # the last words play; the call does not go back to conversation
        if self.taking_message and phase in (CallPhase.LISTENING, CallPhase.THINKING, CallPhase.SPEAKING):
            return  # the recording goes on until the message is in
        self.state.phase = phase

    def caller_finished(self) -> None:
        """The caller ended a turn: the secretary owes a reply."""
        self._move(CallPhase.THINKING)

    def speaking(self) -> None:
        self._move(CallPhase.SPEAKING)

    def listening(self) -> None:
        """What the secretary said has played: the caller's turn."""
        self._move(CallPhase.LISTENING)

    # -- the conversation ---------------------------------------------------------------------------------

    def greeting(self, resumed: bool = False) -> str:
        """The first words: the domain's greeting, or, for a call that fell back from realtime to turns, a short
        line (the caller was greeted already). A repeated start (a retried request) changes nothing."""
        if not self.state.turns:
            self._move(CallPhase.GREETING)
        if resumed:
            text = self.prompts.resumed
            if not self.state.history:
                self.state.history.append(ChatMessage(role="assistant", content=text))
            return text
        text = self.config.opening_line
        if not self.state.history:
            self.state.history.append(ChatMessage(role="assistant", content=text))
        return text

    def conversation(
        self,
        brain: Brain,
        knowledge: KnowledgeSearch | None,
        history: list[ChatMessage] | None = None,
        turns: int | None = None,
        meaning: MeaningModel | None = None,
    ) -> Conversation:
        """The dialogue for `brain`, with the domain's knowledge whatever the brain, on the call's history (or
        `history` and `turns`: an engine taking over from another). Its counters come back into the state on
        each turn."""
        conversation = Conversation(
            self.config,
            brain,
            self.state.history if history is None else history,
            turns=self.state.conversation_turns if turns is None else turns,
            misunderstood=self.state.misunderstood,
            knowledge=knowledge,
            meaning=meaning,
            prompts=self.prompts,
            desk=self.state.desk,
            caller_id_number=self.state.caller_id_number,
            caller_id_name=self.state.caller_id_name,
        )
        self._conversation = conversation
        return conversation

    def turn(
        self,
        at: datetime,
        caller_text: str,
        secretary_text: str = "",
        *,
        action: Action | None = None,
        brain: str | None = None,
        heard_text: str | None = None,
        timings: Timings = UNTIMED,
        recording_file: str | None = None,
        reply_file: str | None = None,
    ) -> TurnRecord:
        """Writes a turn to the call's transcript (the one place a `TurnRecord` is made) and lets its action
        move the call: a message to take, a transfer, a hangup."""
        record = TurnRecord(
            index=len(self.state.turns) + 1,
            at=at,
            caller_text=caller_text,
            secretary_text=secretary_text,
            heard_text=heard_text,
            action=action or Action.continue_(),
            brain=brain,
            stt_ms=timings.stt_ms,
            brain_ms=timings.brain_ms,
            tts_ms=timings.tts_ms,
            total_ms=timings.total_ms,
            recording_file=recording_file,
            reply_file=reply_file,
        )
        self.state.turns.append(record)
        if self._conversation is not None:
            self.state.conversation_turns = self._conversation.turns
            self.state.misunderstood = self._conversation.misunderstood
            self.state.desk = self._conversation.desk
        self.act(record.action)
        return record

    def revise(
        self, record: TurnRecord, *, secretary_text: str | None = None, heard_text: str | None = None,
        action: Action | None = None,
    ) -> None:  # fmt: skip
        """A turn already written grew (an agent said more after a tool call) or was cut (a barge-in after its
        text was complete)."""
        if secretary_text is not None:
            record.secretary_text = secretary_text
        if heard_text is not None:
            record.heard_text = heard_text
        if action is not None and action != record.action:
            record.action = action
            self.act(action)

    def act(self, action: Action) -> None:
        """The call does `action`, whoever decided it (a brain, a tool call, keys, a limit): a message is taken
        from now on, or the conversation ends with a transfer or a hangup."""
        if action.type is ActionType.TAKE_MESSAGE:
            self._move(CallPhase.TAKING_MESSAGE)
        elif action.type is ActionType.TRANSFER:
            self.state.outcome, self.state.outcome_destination = Outcome.TRANSFER, action.destination
            self._move(CallPhase.TRANSFERRING)
        elif action.type is ActionType.HANGUP:
            self.state.outcome = self.state.outcome or Outcome.HANGUP
            self._move(CallPhase.ENDING)

    # -- limits and fixed replies --------------------------------------------------------------------------

    def caller_spoke(self) -> None:
        """The caller said something: the silence count starts again."""
        self.state.silent_turns = 0

    def time_up(self, now: datetime) -> bool:
        return (now - self.state.started_at).total_seconds() > self._max_call_s

    def time_limit(self) -> Reply:
        return Reply(self.prompts.time_limit, self._fallback(), TIME_LIMIT)

    def no_input(self) -> Reply:
        """The caller said nothing (a turn-based recording with nothing above line noise, or a realtime line
        quiet for `caller_silence_s`): asked again, until `recording.silent_turns` in a row end the call."""
        self.state.silent_turns += 1
        if self.state.silent_turns < self.config.recording.silent_turns:
            return Reply(self.prompts.still_there, Action.continue_(), SILENCE)
        self.state.outcome = Outcome.CALLER_SILENT
        return Reply(self.prompts.nobody_there, Action.hangup(), SILENCE)

    def fault(self) -> Reply:
        """The secretary cannot go on (every engine failed): an apology, then a colleague."""
        return Reply(self.prompts.apology, self._fallback(), FAULT)

    def keys(self, digits: str) -> tuple[str, Reply]:
        """What the caller's keys stand for in the transcript, and the reply they get: a callback number while
        the front desk asks for one (or reads one back), else a choice of the directory."""
        self.caller_spoke()
        state = self.state
        request = BrainRequest(
            self.config, (), keys_text(digits), state.started_at, desk=state.desk,  # (a number step reads no clock)
            caller_id_number=state.caller_id_number, caller_id_name=state.caller_id_name,
        )  # fmt: skip
        number = FrontDesk().keyed_number(request, digits)
        if number is None:
            return keys_text(digits), key_reply(self.config, digits, self.prompts)
        state.desk = number.desk or state.desk
        if self._conversation is not None:
            self._conversation.desk = state.desk  # the next turn reads what was asked last
        return keys_text(digits), Reply(number.text, Action.continue_(), KEYS_BRAIN, personal=True)

    def message_taken(self) -> Reply:
        """The caller's message is in (the transport hands it to the courier): thanks, then goodbye."""
        self.state.outcome = Outcome.MESSAGE
        return Reply(f"{self.prompts.message_taken} {self.config.farewell}", Action.hangup(), MESSAGE)

    def _fallback(self) -> Action:
        return Action.transfer(self.config.fallback_destination, self.config.context)

    # -- the end -------------------------------------------------------------------------------------------

    def ended(self, ended_by: EndedBy | None = None, destination: str | None = None) -> Outcome:
        return conclude(self.state, ended_by, destination)

    def record(self, ended_at: datetime, hangup_cause: str | None) -> CallRecord:
        return CallRecord.from_state(self.state, ended_at, hangup_cause)


def conclude(state: CallState, ended_by: EndedBy | None = None, destination: str | None = None) -> Outcome:
    """The call is over; `ended_by` as the Lua script saw it (None: the lifecycle's own view stands). A caller
    hanging up during an announced transfer still hung up; a message left stays a message. (A function too:
    the turn-based `/end` needs no domain config to end a call, which may be gone by then.)"""
    if ended_by == "fallback":
        state.outcome, state.outcome_destination = Outcome.FALLBACK, destination
    elif ended_by == "caller" and state.outcome is not Outcome.MESSAGE:
        state.outcome, state.outcome_destination = Outcome.CALLER_HANGUP, None
    elif ended_by == "hangup" and state.outcome is None:
        state.outcome = Outcome.HANGUP
    state.phase = CallPhase.ENDED
    return state.outcome or Outcome.CALLER_HANGUP
