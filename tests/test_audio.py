"""WAV parsing is strict (recordings come from outside), G.711 and resampling are lossless where they should be."""

from __future__ import annotations

import contextlib
import io
import struct
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secretary.speech.audio import (
    AudioFormatError,
    Pcm,
    StreamResampler,
    alaw_decode,
    alaw_encode,
    parse_wav,
    ulaw_decode,
    ulaw_encode,
    wav_bytes,
)


def tone(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm.from_float32((0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def riff(fmt_tag: int, channels: int, rate: int, bits: int, data: bytes, extra_chunks: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_pcm16_round_trip() -> None:
    pcm = tone()
    assert parse_wav(wav_bytes(pcm)) == pcm


def test_stereo_8bit_is_mixed_down_to_mono_16bit() -> None:
    with io.BytesIO() as out:
        with wave.open(out, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(1)
            w.setframerate(8000)
            w.writeframes(bytes([128, 128, 255, 255, 0, 0]))
        parsed = parse_wav(out.getvalue())
    samples = np.frombuffer(parsed.data, dtype="<i2")
    assert parsed.sample_rate == 8000 and samples.shape == (3,)
    assert samples[0] == 0 and samples[1] > 30000 and samples[2] < -30000


@pytest.mark.parametrize(("tag", "encode"), [(7, ulaw_encode), (6, alaw_encode)])
def test_g711_wav_files_are_read(tag: int, encode: object) -> None:
    pcm = tone()
    encoded = encode(pcm.data)  # type: ignore[operator]
    parsed = parse_wav(riff(tag, 1, 8000, 8, encoded))
    error = np.abs(np.frombuffer(parsed.data, "<i2").astype(int) - np.frombuffer(pcm.data, "<i2").astype(int))
    assert parsed.samples == pcm.samples and error.max() < 1100  # G.711 quantisation


def test_unknown_chunks_before_data_are_skipped() -> None:
    pcm = tone(0.1)
    parsed = parse_wav(riff(1, 1, 8000, 16, pcm.data, extra_chunks=b"LIST" + struct.pack("<I", 3) + b"abc\x00"))
    assert parsed == pcm


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not a WAV"),
        (b"ID3\x03\x00mp3 data here........", "not a WAV"),
        (riff(1, 1, 8000, 16, b""), "empty recording"),
        (riff(1, 1, 8000, 16, bytes(3200))[:200], "truncated"),
        (riff(85, 1, 8000, 16, bytes(100)), "unsupported WAV encoding"),
        (riff(1, 0, 8000, 16, bytes(100)), "channel count"),
        (riff(1, 1, 1, 16, bytes(100)), "sample rate"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00\x00\x00", "truncated"),
    ],
)
def test_bad_wavs_are_refused_with_a_clear_error(blob: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message) as caught:
        parse_wav(blob)
    assert caught.value.code == "bad_audio"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_parse_wav_never_raises_anything_but_a_format_error(blob: bytes) -> None:
    with contextlib.suppress(AudioFormatError):
        parse_wav(b"RIFF" + blob[:4] + b"WAVE" + blob[4:])


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=2, max_size=400).map(lambda b: b[: len(b) // 2 * 2]))
def test_ulaw_and_alaw_decode_encode_are_stable(raw: bytes) -> None:
    once = ulaw_decode(ulaw_encode(raw))
    assert ulaw_decode(ulaw_encode(once)) == once
    once_a = alaw_decode(alaw_encode(raw))
    assert alaw_decode(alaw_encode(once_a)) == once_a


def test_stream_resampler_matches_the_length_of_a_one_shot_resample() -> None:
    pcm = tone(1.0, 22050)
    resampler = StreamResampler(22050, 8000)
    pieces = [resampler.process(pcm.data[i : i + 882]) for i in range(0, len(pcm.data), 882)]
    streamed = b"".join(pieces) + resampler.process(b"", last=True)
    assert abs(len(streamed) // 2 - 8000) <= 2
    assert abs(Pcm(streamed, 8000).rms() - pcm.rms()) / pcm.rms() < 0.05


def test_silence_and_speech_rms() -> None:
    assert Pcm(bytes(1600), 8000).rms() == 0.0
    assert tone().rms() > 5000
