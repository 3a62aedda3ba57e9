"""Per-call usage, kept as flat counters in `CallState.usage` and saved with the call record.

Keys are `<kind>.<provider>.<measure>` so that per-domain totals are plain sums over the calls:
  `stt.deepgram.requests`, `stt.deepgram.audio_seconds`, `brain.groq.requests`, `brain.groq.prompt_tokens`,
  `brain.groq.completion_tokens`, `tts.elevenlabs.requests`, `tts.elevenlabs.characters`,
and for what went wrong: `failures.<kind>.<provider>` (it failed during this call), `skipped.<kind>.<provider>`
(it was benched by an earlier failure, so not tried) and `fallbacks.<kind>` (requests a fallback answered).
"""

from __future__ import annotations

from collections.abc import MutableMapping


class UsageMeter:
    """Writes into the dict it is given (a call's `usage`), so the counts travel with the call state."""

    def __init__(self, counters: MutableMapping[str, float] | None = None) -> None:
        self.counters: MutableMapping[str, float] = counters if counters is not None else {}

    def add(self, key: str, amount: float = 1.0) -> None:
        if amount:
            self.counters[key] = round(self.counters.get(key, 0.0) + amount, 3)

    def served(self, kind: str, provider: str, *, fallback: bool) -> None:
        self.add(f"{kind}.{provider}.requests")
        if fallback:
            self.add(f"fallbacks.{kind}")

    def failure(self, kind: str, provider: str) -> None:
        self.add(f"failures.{kind}.{provider}")

    def skipped(self, kind: str, provider: str) -> None:
        self.add(f"skipped.{kind}.{provider}")

    def audio_seconds(self, provider: str, seconds: float) -> None:
        self.add(f"stt.{provider}.audio_seconds", seconds)

    def tokens(self, provider: str, prompt: int, completion: int) -> None:
        self.add(f"brain.{provider}.prompt_tokens", prompt)
        self.add(f"brain.{provider}.completion_tokens", completion)

    def characters(self, provider: str, count: int) -> None:
        self.add(f"tts.{provider}.characters", count)


def summed(usages: list[dict[str, float]]) -> dict[str, float]:
    """Totals over several calls (the per-domain view)."""
    totals: dict[str, float] = {}
    for usage in usages:
        for key, value in usage.items():
            totals[key] = round(totals.get(key, 0.0) + value, 3)
    return totals
