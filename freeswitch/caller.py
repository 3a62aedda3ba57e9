"""The far end of a simulated call: what the caller does, in order, and how FreeSWITCH records it.

A caller is a queue of actions. The simulated channel takes the next one whenever FreeSWITCH would be
listening: a recording takes the next utterance (or key presses, or a hang-up); a prompt only takes the
actions marked `during="prompt"` (keys that interrupt it, hanging up while it plays).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from secretary.speech.audio import Pcm

Moment = Literal["prompt", "record"]


@dataclass(frozen=True)
class Say:
    """The caller speaks `audio`, then stays silent (or hangs up right after, for a message)."""

    audio: Pcm
    then_hang_up: bool = False


@dataclass(frozen=True)
class Press:
    """The caller presses keys, during the next recording or the next prompt."""

    digits: str
    during: Moment = "record"


@dataclass(frozen=True)
class HangUp:
    during: Moment = "record"
    cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True)
class Silence:
    """The caller stays on the line but no audio arrives (a muted phone, a one-way RTP stream): FreeSWITCH
    writes no comfort noise into a recording, so the next one is a bare 44-byte WAV header."""


@dataclass(frozen=True)
class Run:
    """Not the caller: something the test does at this point of the call (e.g. stop a database)."""

    action: Callable[[], None]


CallerAction = Say | Silence | Press | HangUp | Run


@dataclass(frozen=True)
class Recorded:
    """What `switch_ivr_record_file` kept, and why it stopped."""

    pcm: Pcm
    stopped_by: Literal["silence", "time_limit", "hangup", "end_of_speech"]


def record_like_freeswitch(
    speech: Pcm,
    rate: int,
    time_limit_s: int,
    silence_threshold: int,
    silence_seconds: int,
    hang_up_after: bool,
) -> Recorded:
    """The caller's audio as `recordFile(path, time_limit_s, silence_threshold, silence_seconds)` keeps it.

    FreeSWITCH scores each 20 ms frame by its mean absolute sample value (scaled to 8 kHz) and stops when
    `silence_seconds` worth of consecutive frames score below the threshold (3 s when given 0); the frame
    that ends the silence run is not written. Without a threshold only the time limit or a hang-up ends
    it; here the caller then hangs up after a second of silence, so a simulation always ends.
    """
    audio = speech.resampled(rate)
    frame = rate // 50
    trailing = 0 if hang_up_after else max(silence_seconds or 3, 1) + 1
    samples = np.concatenate([np.frombuffer(audio.data, dtype="<i2"), np.zeros(trailing * rate, dtype="<i2")]).astype(
        np.int32
    )
    frames = len(samples) // frame
    limit_frames = time_limit_s * 50 if time_limit_s > 0 else None
    divisor = max(rate // 8000, 1)
    hits_needed = (rate * (silence_seconds or 3)) // frame if silence_threshold > 0 else None
    hits = hits_needed
    kept = 0
    stopped_by: Literal["silence", "time_limit", "hangup", "end_of_speech"] = (
        "end_of_speech" if hang_up_after else "hangup"
    )
    for index in range(frames):
        if limit_frames is not None and index >= limit_frames:
            stopped_by = "time_limit"
            break
        if hits is not None and hits_needed is not None:
            chunk = samples[index * frame : (index + 1) * frame]
            score = int(np.abs(chunk).sum() / (frame / divisor))
            if score < silence_threshold:
                hits -= 1
                if hits == 0:
                    stopped_by = "silence"
                    break
            else:
                hits = hits_needed
        kept = index + 1
    data = samples[: kept * frame].astype("<i2").tobytes()
    return Recorded(Pcm(data, rate), stopped_by)
