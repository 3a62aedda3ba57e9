"""Spoken prompts kept as WAV files keyed by voice, rate and text: the greeting and other fixed lines are
synthesised once and then served from disk, instantly, to every later call."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from secretary.speech.audio import Pcm, parse_wav, wav_bytes
from secretary.speech.interfaces import TextToSpeech


class TtsCache:
    def __init__(self, directory: Path, sample_rate: int) -> None:
        self.directory = directory
        self.sample_rate = sample_rate
        directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, voice_id: str, text: str) -> Path:
        key = hashlib.sha256(f"{voice_id}\0{self.sample_rate}\0{text.strip()}".encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.wav"

    async def speak(self, tts: TextToSpeech, text: str) -> tuple[Path, bool]:
        """The WAV for `text` in `tts`'s voice; the flag says whether it came from the cache."""
        path = self.path_for(tts.voice_id, text)
        if path.is_file():
            return path, True
        pcm = (await tts.synthesize(text)).resampled(self.sample_rate)
        write_atomically(path, wav_bytes(pcm))
        return path, False

    def load(self, tts: TextToSpeech, text: str) -> Pcm | None:
        path = self.path_for(tts.voice_id, text)
        return parse_wav(path.read_bytes()) if path.is_file() else None


def write_atomically(path: Path, data: bytes) -> None:
    """Readers (FreeSWITCH playing the file) never see a half-written WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
