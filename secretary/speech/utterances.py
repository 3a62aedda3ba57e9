"""End-of-turn detection: cuts a live caller stream into utterances, sans-I/O.

Speech must last `barge_in_ms` before it counts as the caller talking (`SpeechStarted`: a click or a cough
is not an interruption); the turn ends after `end_silence_ms` of silence, and is answered only if it held
`min_speech_ms` of speech. `pre_roll_ms` of audio from before the detector fired is kept, so STT hears the
first syllable; the silence after the last word is cut (STT would only spend time on it). After
`early_stt_ms` of silence, `SpeechPaused` hands out the same audio the turn will have if it ends, so STT
can start while the end of the turn is still being confirmed (`SpeechResumed` withdraws it). Positions are
milliseconds of stream audio, so tests and benchmarks can reason about timing without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from secretary.settings import VadSettings
from secretary.speech.audio import Pcm
from secretary.speech.vad import VoiceActivityDetector

MAX_GAP_WINDOWS = 2  # non-speech windows tolerated while speech is being confirmed
TAIL_MS = 150  # audio kept after the last speech window


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    onset_ms: float  # where in the stream the speech began
    at_ms: float  # where in the stream it was confirmed


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    audio: Pcm
    onset_ms: float
    end_ms: float  # where the speech ended
    at_ms: float  # where the end was decided (end_ms + the silence hangover)
    speech_ms: float


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """A silence long enough to guess the turn is over: `audio` is what the turn holds if it is."""

    audio: Pcm
    onset_ms: float


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """The caller went on after a `SpeechPaused`: the guess was wrong."""


@dataclass(frozen=True, slots=True)
class NoiseDiscarded:
    """Speech too short to be a turn (confirmed as an interruption, but not worth answering)."""

    speech_ms: float


SegmentEvent = SpeechStarted | SpeechPaused | SpeechResumed | UtteranceEnded | NoiseDiscarded


class UtteranceSegmenter:
    def __init__(self, vad: VoiceActivityDetector, sample_rate: int, settings: VadSettings) -> None:
        self._vad = vad
        self._rate = sample_rate
        self._settings = settings
        self._audio = bytearray()
        self._audio_start_ms = 0.0  # stream position of _audio[0]
        self._fed_ms = 0.0
        self._vad_ms = 0.0
        self._state = "idle"  # idle | candidate | speaking
        self._onset = 0.0
        self._run = 0.0
        self._gap = 0
        self._speech = 0.0
        self._silence = 0.0
        self._last_speech_end = 0.0
        self._paused = False

    @property
    def speaking(self) -> bool:
        """The caller is in a confirmed turn that hasn't ended yet."""
        return self._state == "speaking"

    @property
    def active(self) -> bool:
        """Speech has begun (perhaps not yet confirmed) and the turn has not ended."""
        return self._state != "idle"

    @property
    def position_ms(self) -> float:
        return self._fed_ms

    def feed(self, pcm: bytes) -> list[SegmentEvent]:
        self._audio += pcm
        self._fed_ms += len(pcm) / 2 / self._rate * 1000
        events: list[SegmentEvent] = []
        window = self._vad.window_ms
        settings = self._settings
        for speech in self._vad.feed(pcm):
            start = self._vad_ms
            self._vad_ms += window
            if speech:
                if self._paused:
                    self._paused = False
                    events.append(SpeechResumed())
                if self._state == "idle":
                    self._state, self._onset, self._run, self._gap, self._speech = "candidate", start, 0.0, 0, 0.0
                self._run += window
                self._speech += window
                self._silence = 0.0
                self._last_speech_end = self._vad_ms
                if self._state == "candidate" and self._run >= settings.barge_in_ms:
                    self._state = "speaking"
                    events.append(SpeechStarted(self._onset, self._vad_ms))
            elif self._state == "candidate":
                self._gap += 1
                if self._gap > MAX_GAP_WINDOWS:
                    self._state = "idle"
            elif self._state == "speaking":
                self._silence += window
                if self._silence >= settings.end_silence_ms:
                    events.append(self._end())
                elif (
                    not self._paused
                    and 0 < settings.early_stt_ms <= self._silence
                    and self._speech >= settings.min_speech_ms
                ):
                    self._paused = True
                    events.append(SpeechPaused(self._turn_audio(), self._onset))
            if self._state == "speaking" and self._vad_ms - self._onset >= settings.max_utterance_s * 1000:
                events.append(self._end())
        if self._state == "idle":
            self._trim(self._fed_ms - settings.pre_roll_ms)
        return events

    def _end(self) -> SegmentEvent:
        self._state = "idle"
        self._paused = False
        if self._speech < self._settings.min_speech_ms:
            return NoiseDiscarded(self._speech)
        return UtteranceEnded(self._turn_audio(), self._onset, self._last_speech_end, self._vad_ms, self._speech)

    def _turn_audio(self) -> Pcm:
        start = max(self._audio_start_ms, self._onset - self._settings.pre_roll_ms)
        end = min(len(self._audio), self._offset(self._last_speech_end + TAIL_MS))
        return Pcm(bytes(self._audio[self._offset(start) : end]), self._rate)

    def _offset(self, position_ms: float) -> int:
        return 2 * int((position_ms - self._audio_start_ms) * self._rate / 1000)

    def _trim(self, keep_from_ms: float) -> None:
        cut = self._offset(keep_from_ms)
        if cut > 0:
            del self._audio[:cut]
            self._audio_start_ms += cut / 2 / self._rate * 1000

    def reset(self) -> None:
        """Forget the turn in progress (the call moved on: a transfer, a message being recorded)."""
        self._state = "idle"
        self._paused = False
        self._trim(self._fed_ms)
