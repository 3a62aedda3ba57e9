"""VAD and end-of-turn on real speech (Piper), fed in 20 ms frames like a live stream."""

from __future__ import annotations

import numpy as np
import pytest

from secretary.settings import VadSettings
from secretary.speech.audio import Pcm, silence
from secretary.speech.local_engines import LocalModels
from secretary.speech.utterances import NoiseDiscarded, SpeechStarted, UtteranceEnded, UtteranceSegmenter
from secretary.speech.vad import EnergyVad, SileroVad
from tests.support.speech import Speech


def frames(pcm: Pcm, ms: int = 20) -> list[bytes]:
    size = 2 * pcm.sample_rate * ms // 1000
    return [pcm.data[i : i + size] for i in range(0, len(pcm.data), size)]


def leading_silence_ms(pcm: Pcm) -> float:
    samples = np.abs(np.frombuffer(pcm.data, dtype="<i2"))
    return float(np.argmax(samples > 500)) / pcm.sample_rate * 1000


def run(segmenter: UtteranceSegmenter, pcm: Pcm) -> list[object]:
    events: list[object] = []
    for frame in frames(pcm):
        events += segmenter.feed(frame)
    return events


@pytest.mark.parametrize("rate", [8000, 16000])
def test_an_utterance_is_cut_at_the_silence_and_transcribes(models: LocalModels, speech: Speech, rate: int) -> None:
    said = speech.say("I would like to speak to somebody in billing please.", rate)
    stream = silence(1.0, rate) + said + silence(1.5, rate)
    segmenter = UtteranceSegmenter(SileroVad(models.silero_vad(), rate), rate, VadSettings())
    events = run(segmenter, stream)
    started = [e for e in events if isinstance(e, SpeechStarted)]
    ended = [e for e in events if isinstance(e, UtteranceEnded)]
    assert len(started) == 1 and len(ended) == 1, events
    onset = 1000 + leading_silence_ms(said)
    assert abs(started[0].onset_ms - onset) < 100  # the detector found where speech began
    assert started[0].at_ms - started[0].onset_ms >= VadSettings().barge_in_ms
    utterance = ended[0]
    assert utterance.at_ms - utterance.end_ms >= VadSettings().end_silence_ms
    assert utterance.audio.duration_s >= said.duration_s - 0.3  # the pre-roll kept the first syllable
    assert "billing" in speech.transcribe(utterance.audio).lower()


def test_two_utterances_with_a_long_pause_are_two_turns(models: LocalModels, speech: Speech) -> None:
    first, second = speech.say("Hello there.", 8000), speech.say("Are you open on Saturday?", 8000)
    stream = silence(0.5, 8000) + first + silence(1.0, 8000) + second + silence(1.0, 8000)
    segmenter = UtteranceSegmenter(SileroVad(models.silero_vad(), 8000), 8000, VadSettings())
    ended = [e for e in run(segmenter, stream) if isinstance(e, UtteranceEnded)]
    assert len(ended) == 2
    assert "saturday" in speech.transcribe(ended[1].audio).lower()


def test_a_click_is_not_speech_and_faint_speech_is_below_the_floor(models: LocalModels, speech: Speech) -> None:
    click = Pcm((np.ones(80, dtype="<i2") * 20000).tobytes(), 8000)  # 10 ms
    faint_samples = np.frombuffer(speech.say("This is the secretary talking.", 8000).data, dtype="<i2")
    faint = Pcm((faint_samples * 0.003).astype("<i2").tobytes(), 8000)  # about -55 dBFS: line echo
    stream = silence(0.5, 8000) + click + silence(1.0, 8000) + faint + silence(1.0, 8000)
    segmenter = UtteranceSegmenter(SileroVad(models.silero_vad(), 8000), 8000, VadSettings())
    assert run(segmenter, stream) == []


def test_short_speech_is_discarded_not_answered(models: LocalModels, speech: Speech) -> None:
    settings = VadSettings(barge_in_ms=100, min_speech_ms=2000)
    stream = silence(0.5, 8000) + speech.say("Yes.", 8000) + silence(1.0, 8000)
    events = run(UtteranceSegmenter(SileroVad(models.silero_vad(), 8000), 8000, settings), stream)
    assert any(isinstance(e, SpeechStarted) for e in events)
    assert any(isinstance(e, NoiseDiscarded) for e in events)
    assert not any(isinstance(e, UtteranceEnded) for e in events)


def test_a_monologue_is_cut_at_the_maximum_length(speech: Speech) -> None:
    settings = VadSettings(max_utterance_s=1.0, barge_in_ms=60, min_speech_ms=100)
    tone = Pcm((np.sin(np.arange(8000 * 3) * 0.3) * 8000).astype("<i2").tobytes(), 8000)
    ended = [e for e in run(UtteranceSegmenter(EnergyVad(8000), 8000, settings), tone) if isinstance(e, UtteranceEnded)]
    assert len(ended) >= 2 and all(e.audio.duration_s <= 1.5 for e in ended)


def test_energy_vad_decides_per_window() -> None:
    vad = EnergyVad(8000, min_level_dbfs=-40)
    loud = (np.ones(160, dtype="<i2") * 3000).tobytes()
    assert vad.feed(bytes(320) + loud + loud[:100]) == [False, True]
    assert vad.feed(loud[100:]) == [True]


def test_the_first_clause_of_a_long_sentence_is_spoken_on_its_own() -> None:
    from secretary.speech.sentences import split_first_clause

    assert split_first_clause("We are at 100 Main Street in Springfield, next to the train station.") == [
        "We are at 100 Main Street in Springfield,",
        "next to the train station.",
    ]
    assert split_first_clause("Yes, there is free parking behind the building.") == [
        "Yes, there is free parking behind the building."
    ]
    assert split_first_clause("No commas here at all.") == ["No commas here at all."]
