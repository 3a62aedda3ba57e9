"""`TurnTaking`, the pipeline's turn-taking, driven with scripted events only (no asyncio, no models)."""

from __future__ import annotations

import pytest

from bridge.engines.turn_taking import (
    AbandonStream,
    AwaitTranscript,
    BargeIn,
    CallerActive,
    CallerFinished,
    Carry,
    Cut,
    DropEarlyStt,
    End,
    IllegalTransition,
    Phase,
    PlayApology,
    StartEarlyStt,
    StartReply,
    Stream,
    TurnTaking,
)
from secretary.speech.audio import Pcm
from secretary.speech.utterances import NoiseDiscarded, SpeechPaused, SpeechResumed, SpeechStarted, UtteranceEnded

RATE = 8000
EMPTY = Pcm(b"", RATE)
FIRST = Pcm(b"\x01\x00" * 4, RATE)
SECOND = Pcm(b"\x02\x00" * 4, RATE)
APOLOGY = b"sorry"
LOST = ConnectionError("socket closed")


def started() -> SpeechStarted:
    return SpeechStarted(onset_ms=0.0, at_ms=90.0)


def ended(audio: Pcm = FIRST, end_ms: float = 1000.0) -> UtteranceEnded:
    return UtteranceEnded(audio, onset_ms=0.0, end_ms=end_ms, at_ms=end_ms + 600, speech_ms=800.0)


def reply(audio: Pcm = FIRST, text: str | None = None, *, early: bool = False, apology: bytes = b"") -> StartReply:
    return StartReply(audio, text, early, apology)


def answering(audio: Pcm = FIRST) -> TurnTaking:
    """A machine whose reply to `audio` is being made."""
    turns = TurnTaking(RATE)
    turns.segment(started(), speaking=False)
    turns.segment(ended(audio), speaking=False)
    assert turns.phase is Phase.ANSWERING
    return turns


def streaming() -> TurnTaking:
    turns = TurnTaking(RATE)
    turns.stream_opened()
    assert turns.stream is Stream.LIVE
    return turns


# -- the phases ------------------------------------------------------------------------------------------------


def test_a_turn_is_answered_heard_and_over() -> None:
    turns = TurnTaking(RATE)
    assert turns.phase is Phase.LISTENING and not turns.replying
    assert turns.segment(started(), speaking=False) == [CallerActive()]
    assert turns.segment(ended(), speaking=False) == [CallerFinished(streamed=False), reply()]
    assert turns.phase is Phase.ANSWERING and turns.replying
    turns.reply_audible()
    assert turns.phase is Phase.REPLYING and turns.replying
    turns.reply_audible()  # (once is enough; again changes nothing)
    assert turns.phase is Phase.REPLYING
    assert turns.reply_over(ended=False) == []
    assert turns.phase is Phase.LISTENING
    assert turns.segment(NoiseDiscarded(speech_ms=100.0), speaking=False) == []


def test_a_reply_that_ends_the_conversation_finishes_then_ends() -> None:
    turns = answering()
    turns.reply_audible()
    turns.finishing()
    assert turns.phase is Phase.FINISHING and turns.ending and not turns.replying
    assert turns.reply_over(ended=True) == [End()]
    assert turns.phase is Phase.ENDED and turns.ending
    with pytest.raises(IllegalTransition):
        turns.segment(started(), speaking=False)
    with pytest.raises(IllegalTransition):
        turns.keys_pressed(speaking=True)


def test_a_reply_can_finish_before_anything_of_it_is_audible() -> None:
    turns = answering()
    turns.finishing()
    assert turns.phase is Phase.FINISHING


def test_a_finishing_reply_cancelled_leaves_the_call_finishing() -> None:
    turns = answering()
    turns.finishing()
    assert turns.reply_over(ended=False) == []
    assert turns.phase is Phase.FINISHING


@pytest.mark.parametrize("audible", [False, True])
def test_a_reply_cancelled_outside_a_barge_in_returns_to_listening(audible: bool) -> None:
    turns = answering()
    if audible:
        turns.reply_audible()
    assert turns.reply_over(ended=False) == []
    assert turns.phase is Phase.LISTENING and turns.carry is None


# -- illegal transitions -----------------------------------------------------------------------------------------


def test_transitions_the_phase_cannot_have_raise() -> None:
    turns = TurnTaking(RATE)
    for event in (turns.reply_audible, turns.finishing):
        with pytest.raises(IllegalTransition):
            event()
    with pytest.raises(IllegalTransition):
        turns.reply_over(ended=False)
    with pytest.raises(IllegalTransition):
        turns.cut(heard=False, recorded=False)
    turns = answering()
    with pytest.raises(IllegalTransition):  # a conversation ends only through finishing
        turns.reply_over(ended=True)
    turns.stream_opened()
    with pytest.raises(IllegalTransition):
        turns.stream_opened()


def test_nothing_but_the_cut_while_a_barge_in_is_under_way() -> None:
    turns = answering()
    assert turns.segment(started(), speaking=False) == [CallerActive(), BargeIn()]
    assert turns.phase is Phase.INTERRUPTING and not turns.replying
    with pytest.raises(IllegalTransition):
        turns.segment(ended(), speaking=False)
    with pytest.raises(IllegalTransition):
        turns.streamed("hello", 10.0)
    with pytest.raises(IllegalTransition):
        turns.keys_pressed(speaking=False)
    with pytest.raises(IllegalTransition):
        turns.stream_lost(LOST)
    with pytest.raises(IllegalTransition):
        turns.reply_over(ended=False)
    with pytest.raises(IllegalTransition):
        turns.reply_audible()
    assert turns.cut(heard=True, recorded=False) == Cut(carried=False)
    assert turns.phase is Phase.LISTENING


# -- barge-in ----------------------------------------------------------------------------------------------------


def test_speech_while_listening_barges_in_only_when_the_playback_speaks() -> None:
    turns = TurnTaking(RATE)
    assert turns.segment(started(), speaking=False) == [CallerActive()]
    assert turns.phase is Phase.LISTENING
    assert turns.segment(started(), speaking=True) == [CallerActive(), BargeIn()]  # e.g. the greeting
    assert turns.cut(heard=True, recorded=False) == Cut(carried=False)  # no reply: nothing to carry
    assert turns.phase is Phase.LISTENING and turns.carry is None


def test_a_reply_cut_before_anything_was_heard_is_carried() -> None:
    turns = answering(FIRST)
    assert turns.segment(started(), speaking=False) == [CallerActive(), BargeIn()]
    assert turns.cut(heard=False, recorded=False, caller_text="first part") == Cut(carried=True)
    assert turns.carry == Carry(FIRST, "first part")
    assert turns.phase is Phase.LISTENING


def test_an_audible_reply_cut_before_the_caller_heard_it_is_carried_too() -> None:
    turns = answering(FIRST)
    turns.reply_audible()  # queued behind the filler, say
    assert turns.segment(started(), speaking=True) == [CallerActive(), BargeIn()]
    assert turns.cut(heard=False, recorded=False).carried
    assert turns.carry == Carry(FIRST, "")


@pytest.mark.parametrize(("heard", "recorded"), [(True, False), (False, True), (True, True)])
def test_a_reply_heard_in_part_or_written_down_is_not_carried(heard: bool, recorded: bool) -> None:
    turns = answering()
    turns.reply_audible()
    assert turns.segment(started(), speaking=True) == [CallerActive(), BargeIn()]
    assert turns.cut(heard=heard, recorded=recorded) == Cut(carried=False)
    assert turns.carry is None and turns.phase is Phase.LISTENING


def test_the_carried_turn_is_answered_with_the_next_one() -> None:
    turns = answering(FIRST)
    turns.segment(started(), speaking=False)
    turns.cut(heard=False, recorded=False)
    actions = turns.segment(ended(SECOND), speaking=False)
    assert actions == [CallerFinished(streamed=False), reply(FIRST + SECOND)]
    assert turns.carry is None


def test_a_turn_ending_while_a_reply_is_made_cuts_it_then_answers_the_whole() -> None:
    turns = answering(FIRST)
    assert turns.segment(ended(SECOND), speaking=False) == [CallerFinished(streamed=False), BargeIn()]
    assert turns.phase is Phase.INTERRUPTING
    assert turns.cut(heard=False, recorded=False) == Cut(carried=True, then=(reply(FIRST + SECOND),))
    assert turns.phase is Phase.ANSWERING and turns.carry is None


def test_a_turn_ending_after_a_heard_reply_is_answered_alone() -> None:
    turns = answering(FIRST)
    turns.reply_audible()
    assert turns.segment(ended(SECOND), speaking=True) == [CallerFinished(streamed=False), BargeIn()]
    assert turns.cut(heard=True, recorded=True) == Cut(carried=False, then=(reply(SECOND),))


# -- keys ----------------------------------------------------------------------------------------------------------


def test_keys_barge_in_while_speaking_or_replying_never_while_finishing() -> None:
    turns = TurnTaking(RATE)
    assert turns.keys_pressed(speaking=False) == []
    assert turns.keys_pressed(speaking=True) == [BargeIn()]
    assert turns.cut(heard=True, recorded=True) == Cut(carried=False)
    turns = answering()
    assert turns.keys_pressed(speaking=False) == [BargeIn()]
    assert turns.cut(heard=False, recorded=False).carried
    turns = answering()
    turns.reply_audible()
    assert turns.keys_pressed(speaking=True) == [BargeIn()]
    assert turns.cut(heard=True, recorded=False) == Cut(carried=False)
    turns = answering()
    turns.reply_audible()
    turns.finishing()
    assert turns.keys_pressed(speaking=True) == []
    assert turns.phase is Phase.FINISHING


# -- finishing -------------------------------------------------------------------------------------------------


def test_finishing_ignores_the_caller_and_keys_but_not_the_end_of_the_reply() -> None:
    turns = streaming()
    turns.segment(started(), speaking=False)
    assert turns.segment(ended(FIRST, end_ms=1000.0), speaking=False) == [AwaitTranscript()]
    assert turns.streamed("goodbye", 1500.0) == [CallerFinished(streamed=True), reply(EMPTY, "goodbye")]
    turns.reply_audible()
    turns.finishing()
    assert turns.segment(started(), speaking=True) == []
    assert turns.segment(SpeechPaused(SECOND, onset_ms=2000.0), speaking=True) == []
    assert turns.segment(ended(SECOND, end_ms=3000.0), speaking=True) == []
    assert turns.streamed("wait", 3500.0) == []
    assert turns.unanswered is None and turns.covered_ms == 1500.0
    assert turns.keys_pressed(speaking=True) == []
    assert turns.stream_lost(LOST) == [AbandonStream(LOST)]
    assert turns.stream is Stream.LOST
    assert turns.reply_over(ended=True) == [End()]


def test_a_turn_unanswered_when_the_stream_is_lost_while_finishing_is_not_answered() -> None:
    turns = streaming()
    turns.streamed("goodbye", 500.0)
    turns.finishing()
    assert turns.segment(ended(FIRST, end_ms=1000.0), speaking=True) == []  # ignored: no unanswered turn
    assert turns.stream_lost(LOST) == [AbandonStream(LOST)]


# -- early STT -------------------------------------------------------------------------------------------------


def test_an_early_stt_starts_on_a_pause_and_is_the_turns_transcript() -> None:
    turns = TurnTaking(RATE)
    turns.segment(started(), speaking=False)
    assert turns.segment(SpeechPaused(FIRST, onset_ms=0.0), speaking=False) == [StartEarlyStt(FIRST)]
    assert turns.early == FIRST
    assert turns.segment(ended(FIRST), speaking=False) == [CallerFinished(streamed=False), reply(early=True)]
    assert turns.early is None


def test_an_early_stt_is_dropped_when_the_caller_resumes() -> None:
    turns = TurnTaking(RATE)
    assert turns.segment(SpeechPaused(FIRST, onset_ms=0.0), speaking=False) == [StartEarlyStt(FIRST)]
    assert turns.segment(SpeechResumed(), speaking=False) == [DropEarlyStt()]
    assert turns.early is None
    assert turns.segment(SpeechResumed(), speaking=False) == []
    assert turns.segment(ended(SECOND), speaking=False) == [CallerFinished(streamed=False), reply(SECOND)]


def test_a_second_pause_replaces_the_early_stt() -> None:
    turns = TurnTaking(RATE)
    turns.segment(SpeechPaused(FIRST, onset_ms=0.0), speaking=False)
    assert turns.segment(SpeechPaused(SECOND, onset_ms=0.0), speaking=False) == [
        DropEarlyStt(),
        StartEarlyStt(SECOND),
    ]


def test_no_early_stt_while_a_reply_is_in_progress_or_a_turn_is_carried() -> None:
    turns = answering()
    assert turns.segment(SpeechPaused(SECOND, onset_ms=0.0), speaking=False) == []
    turns.reply_audible()
    assert turns.segment(SpeechPaused(SECOND, onset_ms=0.0), speaking=True) == []
    turns.segment(started(), speaking=True)
    turns.cut(heard=False, recorded=False)
    assert turns.carry is not None and turns.phase is Phase.LISTENING
    assert turns.segment(SpeechPaused(SECOND, onset_ms=0.0), speaking=False) == []  # the turn is carry + this
    assert turns.early is None


def test_an_early_stt_is_not_used_for_a_streamed_transcript() -> None:
    turns = TurnTaking(RATE)
    assert turns.segment(SpeechPaused(FIRST, onset_ms=0.0), speaking=False) == [StartEarlyStt(FIRST)]
    assert turns.stream_opened() == [DropEarlyStt()]  # opened while the caller was speaking
    assert turns.early is None
    assert turns.streamed("hello", 1200.0) == [CallerFinished(streamed=True), reply(EMPTY, "hello")]


def test_a_stream_opened_with_no_early_stt_drops_nothing() -> None:
    assert TurnTaking(RATE).stream_opened() == []


# -- streaming STT -----------------------------------------------------------------------------------------------


def test_while_the_stream_is_live_turns_end_on_its_transcripts() -> None:
    turns = streaming()
    assert turns.segment(started(), speaking=False) == [CallerActive()]
    assert turns.segment(SpeechPaused(FIRST, onset_ms=0.0), speaking=False) == []  # no early STT
    assert turns.segment(ended(FIRST, end_ms=1000.0), speaking=False) == [AwaitTranscript()]
    assert turns.unanswered == FIRST and turns.phase is Phase.LISTENING
    assert turns.streamed("hello", 1400.0) == [CallerFinished(streamed=True), reply(EMPTY, "hello")]
    assert turns.unanswered is None and turns.covered_ms == 1400.0
    turns.reply_over(ended=False)
    assert turns.segment(ended(SECOND, end_ms=1300.0), speaking=False) == []  # covered by that transcript
    assert turns.unanswered is None


def test_a_transcript_barges_into_a_reply_in_progress() -> None:
    turns = streaming()
    turns.streamed("hello", 1000.0)
    assert turns.streamed("and more", 2000.0) == [CallerFinished(streamed=True), BargeIn()]
    assert turns.cut(heard=False, recorded=False, caller_text="hello") == Cut(
        carried=True, then=(reply(EMPTY, "hello and more"),)
    )


def test_a_carried_transcribed_turn_opens_the_next_streamed_one() -> None:
    turns = answering(FIRST)  # the stream opens only later, say
    turns.stream_opened()
    turns.segment(started(), speaking=False)
    assert turns.cut(heard=False, recorded=False, caller_text="my name is").carried
    assert turns.streamed("Alice", 3000.0) == [CallerFinished(streamed=True), reply(EMPTY, "my name is Alice")]


def test_the_unanswered_turn_is_answered_when_the_stream_is_lost() -> None:
    turns = streaming()
    turns.segment(started(), speaking=False)
    turns.segment(ended(FIRST, end_ms=1000.0), speaking=False)
    assert turns.stream_lost(LOST) == [AbandonStream(LOST), reply(FIRST)]
    assert turns.stream is Stream.LOST and turns.unanswered is None
    assert turns.phase is Phase.ANSWERING
    assert turns.stream_lost(LOST) == []  # (once)
    turns.reply_over(ended=False)
    # on with our VAD: pauses start the early STT again, turns end on the VAD
    assert turns.segment(SpeechPaused(SECOND, onset_ms=2000.0), speaking=False) == [StartEarlyStt(SECOND)]
    assert turns.segment(ended(SECOND, end_ms=2500.0), speaking=False) == [
        CallerFinished(streamed=False),
        reply(SECOND, early=True),
    ]


def test_a_stream_lost_with_nothing_unanswered_only_abandons_it() -> None:
    turns = streaming()
    assert turns.stream_lost(LOST) == [AbandonStream(LOST)]
    assert TurnTaking(RATE).stream_lost(LOST) == []  # no stream at all


def test_an_unanswered_turn_with_a_reply_in_progress_cuts_it_first() -> None:
    turns = streaming()
    turns.streamed("hello", 500.0)  # the provider ended the turn on a short pause; the caller went on
    assert turns.segment(ended(FIRST, end_ms=1000.0), speaking=False) == [AwaitTranscript()]
    assert turns.stream_lost(LOST) == [AbandonStream(LOST), BargeIn()]
    assert turns.cut(heard=False, recorded=False, caller_text="hello") == Cut(
        carried=True, then=(reply(EMPTY + FIRST),)
    )


def test_a_transcript_queued_before_the_loss_is_still_answered() -> None:
    turns = streaming()
    turns.stream_lost(LOST)
    assert turns.streamed("late words", 800.0) == [CallerFinished(streamed=True), reply(EMPTY, "late words")]


def test_a_late_transcript_of_words_answered_from_the_vad_is_not_answered_again() -> None:
    turns = streaming()
    turns.segment(started(), speaking=False)
    assert turns.segment(ended(FIRST, end_ms=1000.0), speaking=False) == [AwaitTranscript()]
    assert turns.stream_lost(LOST) == [AbandonStream(LOST), reply(FIRST)]  # no transcript in time
    assert turns.streamed("where are you", 1000.0) == []  # queued before the loss: the same words


def test_two_turns_awaiting_the_stream_are_answered_together_when_it_is_lost() -> None:
    turns = streaming()
    assert turns.segment(ended(FIRST, end_ms=1000.0), speaking=False) == [AwaitTranscript()]
    assert turns.segment(ended(SECOND, end_ms=2500.0), speaking=False) == [AwaitTranscript()]
    assert turns.unanswered == FIRST + SECOND
    assert turns.stream_lost(LOST) == [AbandonStream(LOST), reply(FIRST + SECOND)]


# -- taking over -------------------------------------------------------------------------------------------------


def test_a_takeover_with_the_caller_silent_apologises_at_once() -> None:
    turns = TurnTaking(RATE)
    assert turns.take_over(APOLOGY, caller_speaking=False) == [PlayApology(APOLOGY)]
    assert turns.apology == b""
    assert turns.replayed([started(), ended(FIRST)]) == [
        CallerActive(),
        CallerFinished(streamed=False),
        reply(FIRST),
    ]
    with pytest.raises(IllegalTransition):
        turns.take_over(APOLOGY, caller_speaking=False)


def test_a_takeover_holds_the_apology_while_the_caller_speaks() -> None:
    turns = TurnTaking(RATE)
    assert turns.take_over(APOLOGY, caller_speaking=True) == []
    assert turns.apology == APOLOGY
    assert turns.replayed([started()]) == [CallerActive()]
    assert turns.apology == APOLOGY
    assert turns.segment(SpeechResumed(), speaking=True) == []
    assert turns.segment(ended(SECOND), speaking=True) == [
        CallerFinished(streamed=False),
        reply(SECOND, apology=APOLOGY),
    ]
    assert turns.apology == b""
    turns.reply_over(ended=False)
    assert turns.segment(ended(FIRST), speaking=False) == [CallerFinished(streamed=False), reply(FIRST)]


def test_the_held_apology_opens_a_streamed_or_unanswered_turn_too() -> None:
    turns = streaming()
    turns.take_over(APOLOGY, caller_speaking=True)
    assert turns.streamed("hello", 1000.0) == [CallerFinished(streamed=True), reply(EMPTY, "hello", apology=APOLOGY)]
    turns = streaming()
    turns.take_over(APOLOGY, caller_speaking=True)
    turns.segment(ended(FIRST), speaking=False)
    assert turns.stream_lost(LOST) == [AbandonStream(LOST), reply(FIRST, apology=APOLOGY)]


def test_the_replayed_utterances_are_answered_as_one_turn() -> None:
    turns = TurnTaking(RATE)
    turns.take_over(APOLOGY, caller_speaking=True)
    actions = turns.replayed([started(), ended(FIRST), NoiseDiscarded(50.0), started(), ended(SECOND), started()])
    assert actions == [
        CallerActive(),
        CallerActive(),
        CallerActive(),
        CallerFinished(streamed=False),
        reply(FIRST + SECOND, apology=APOLOGY),
    ]
    assert turns.phase is Phase.ANSWERING
    with pytest.raises(IllegalTransition):
        turns.replayed([])
