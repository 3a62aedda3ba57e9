"""Audio as the engines and the wire need it: mono signed 16-bit PCM (`Pcm`), WAV, G.711, resampling.

The WAV reader is strict on purpose: recordings come from outside (a spool folder, an HTTP body), so a
truncated, empty or non-PCM file is refused with a clear `AudioFormatError` instead of being guessed at.
"""

from __future__ import annotations

import io
import struct
import warnings
import wave
from dataclasses import dataclass

import numpy as np
import soxr

from secretary.errors import BadInput

with warnings.catch_warnings():  # stdlib on 3.11/3.12, the audioop-lts package from 3.13 on
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

_FORMAT_PCM, _FORMAT_FLOAT, _FORMAT_ALAW, _FORMAT_MULAW, _FORMAT_EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
MAX_WAV_CHANNELS = 8
SUPPORTED_RATES = range(4000, 192001)


class AudioFormatError(BadInput):
    """Audio we can't use: not a WAV, truncated, empty, or an encoding we don't read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="audio", code="bad_audio")


@dataclass(frozen=True, slots=True)
class Pcm:
    """Mono little-endian signed 16-bit samples at `sample_rate`."""

    data: bytes
    sample_rate: int

    @property
    def samples(self) -> int:
        return len(self.data) // 2

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    def to_float32(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype="<i2").astype(np.float32) / 32768.0

    @classmethod
    def from_float32(cls, samples: np.ndarray, sample_rate: int) -> Pcm:
        clipped = np.clip(samples, -1.0, 32767 / 32768)
        return cls((clipped * 32768.0).astype("<i2").tobytes(), sample_rate)

    def resampled(self, rate: int) -> Pcm:
        if rate == self.sample_rate or not self.data:
            return Pcm(self.data, rate)
        source = np.frombuffer(self.data, dtype="<i2")
        out = soxr.resample(source, self.sample_rate, rate, quality="HQ")
        return Pcm(np.asarray(out, dtype="<i2").tobytes(), rate)

    def rms(self) -> float:
        """Root mean square on the int16 scale (what FreeSWITCH's silence thresholds compare with)."""
        if not self.data:
            return 0.0
        samples = np.frombuffer(self.data, dtype="<i2").astype(np.float64)
        return float(np.sqrt(np.mean(samples * samples)))

    def __add__(self, other: Pcm) -> Pcm:
        if other.sample_rate != self.sample_rate:
            other = other.resampled(self.sample_rate)
        return Pcm(self.data + other.data, self.sample_rate)


def silence(seconds: float, sample_rate: int) -> Pcm:
    return Pcm(bytes(2 * round(seconds * sample_rate)), sample_rate)


def parse_wav(blob: bytes, *, allow_empty: bool = False) -> Pcm:
    """Read a RIFF/WAVE file (PCM 8/16/24/32-bit, float32, A-law, µ-law; any channel count mixed down).
    `allow_empty`: a header without audio is silence, not an error (FreeSWITCH records a caller from whom no
    audio arrives as just the header)."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioFormatError("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    offset = 12
    while offset + 8 <= len(blob):
        chunk_id = blob[offset : offset + 4]
        (size,) = struct.unpack_from("<I", blob, offset + 4)
        body_start = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body_start + size > len(blob):
                raise AudioFormatError("truncated WAV: incomplete fmt chunk")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", blob, body_start)
            if tag == _FORMAT_EXTENSIBLE and size >= 40:
                (tag,) = struct.unpack_from("<H", blob, body_start + 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("WAV data chunk before its fmt chunk")
            available = len(blob) - body_start
            if size > available:
                raise AudioFormatError(f"truncated WAV: header promises {size} bytes of audio, file holds {available}")
            return _decode(blob[body_start : body_start + size], *fmt, allow_empty=allow_empty)
        offset = body_start + size + (size & 1)
    raise AudioFormatError("truncated WAV: no data chunk" if fmt else "WAV without a fmt chunk")


def _decode(raw: bytes, tag: int, channels: int, rate: int, bits: int, *, allow_empty: bool) -> Pcm:
    if not 1 <= channels <= MAX_WAV_CHANNELS:
        raise AudioFormatError(f"unsupported channel count {channels}")
    if rate not in SUPPORTED_RATES:
        raise AudioFormatError(f"unsupported sample rate {rate}")
    if tag == _FORMAT_PCM and bits in (8, 16, 24, 32):
        width = bits // 8
        if bits == 8:  # unsigned in WAV
            raw = audioop.bias(raw[: len(raw) - len(raw) % channels], 1, -128)
    elif tag == _FORMAT_FLOAT and bits == 32:
        floats = np.frombuffer(raw[: len(raw) - len(raw) % 4], dtype="<f4")
        raw, width = (np.clip(floats, -1.0, 1.0) * 32767).astype("<i2").tobytes(), 2
    elif tag in (_FORMAT_ALAW, _FORMAT_MULAW) and bits == 8:
        raw = raw[: len(raw) - len(raw) % channels]
        raw, width = (audioop.alaw2lin(raw, 2) if tag == _FORMAT_ALAW else audioop.ulaw2lin(raw, 2)), 2
    else:
        raise AudioFormatError(f"unsupported WAV encoding (format {tag}, {bits} bits)")
    frame = width * channels
    raw = raw[: len(raw) - len(raw) % frame]
    if not raw:
        if allow_empty:
            return Pcm(b"", rate)
        raise AudioFormatError("empty recording: the WAV holds no audio")
    if channels > 1:
        samples = np.frombuffer(audioop.lin2lin(raw, width, 2), dtype="<i2").reshape(-1, channels)
        raw, width = samples.mean(axis=1).astype("<i2").tobytes(), 2
    elif width != 2:
        raw = audioop.lin2lin(raw, width, 2)
    return Pcm(raw, rate)


def wav_bytes(pcm: Pcm) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(pcm.sample_rate)
        writer.writeframes(pcm.data)
    return out.getvalue()


def ulaw_encode(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, 2)


def ulaw_decode(data: bytes) -> bytes:
    return audioop.ulaw2lin(data, 2)


def alaw_encode(pcm: bytes) -> bytes:
    return audioop.lin2alaw(pcm, 2)


def alaw_decode(data: bytes) -> bytes:
    return audioop.alaw2lin(data, 2)


class StreamResampler:
    """Resamples a stream chunk by chunk with state kept between chunks (no clicks at chunk borders).
    Quality QQ emits steadily instead of in ~100 ms bursts, which matters for 20 ms frames."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, "int16", "QQ")

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return bytes(self._stream.resample_chunk(samples, last=last).tobytes())
