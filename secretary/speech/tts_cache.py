"""Spoken prompts kept as WAV files keyed by voice, rate and text: the greeting and other fixed lines are
synthesised once and then served from disk, instantly, to every later call."""

from __future__ import annotations

import asyncio
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
        self._held: dict[Path, Pcm] = {}
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
        # A chain may have fallen back: file the audio under the voice that actually spoke it.
        spoken_by = getattr(tts, "last_voice_id", None) or tts.voice_id
        path = self.path_for(spoken_by, text)
        write_atomically(path, wav_bytes(pcm))
        return path, False

    async def held(self, tts: TextToSpeech, text: str) -> Pcm:
        """A short prompt (the filler) ready in memory: played mid-call, it must not wait on disk or an engine.
        Synthesised and filed on first use; call this at call start to have it ready."""
        pcm = self._held.get(self.path_for(tts.voice_id, text))
        if pcm is None:
            path, _hit = await self.speak(tts, text)
            pcm = parse_wav(await asyncio.to_thread(path.read_bytes))
            self._held[path] = pcm
        return pcm

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
