"""The directory's names as speech recognition's hints, on the real Whisper with Piper's voice: names the
model has never seen come out spelled as the directory has them, and ordinary short answers are unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels, WhisperStt, whisper_prompt
from tests.support.speech import Speech

NAMES = ["Ms. Szymanska", "Bogdanovic", "Dr. Okonkwo", "Reception"]


@pytest.fixture
def whisper(models: LocalModels) -> Iterator[WhisperStt]:
    pool = CpuPool(1)
    yield WhisperStt(models, pool)
    pool.close()


async def test_a_name_hint_fixes_the_spelling_of_an_unusual_surname(whisper: WhisperStt, speech: Speech) -> None:
    said = speech.say("Put me through to Ms. Szymanska.")
    assert "Szymanska" not in (await whisper.transcribe(said, "en")).text  # heard as "Chaimenska"
    assert "Szymanska" in (await whisper.transcribe(said, "en", NAMES)).text


@pytest.mark.parametrize("answer", ["Yes.", "No.", "Goodbye."])
async def test_hints_leave_short_answers_as_they_are(whisper: WhisperStt, speech: Speech, answer: str) -> None:
    assert (await whisper.transcribe(speech.say(answer), "en", NAMES)).text == answer


def test_the_prompt_names_each_hint_once() -> None:
    assert whisper_prompt(["Sales", "Sales", " Dr. Miller "]) == "Names you may hear: Sales, Dr. Miller."
    assert whisper_prompt([]) is None
