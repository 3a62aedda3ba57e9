"""ElevenLabs text-to-speech over its HTTP streaming endpoint (aiohttp):
`POST /v1/text-to-speech/{voice_id}/stream?output_format=…` with the key in `xi-api-key`.

Ask for the call's own format (`pcm_8000`/`pcm_16000`/… or `ulaw_8000` for G.711 calls) so the audio is
not transcoded twice; µ-law is expanded to PCM here (lossless for what it carries), PCM passes through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp

from secretary.errors import ProviderFailed
from secretary.speech.audio import Pcm, ulaw_decode

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
_FORMAT = re.compile(r"^(pcm|ulaw)_(\d{4,5})$")
CHUNK_BYTES = 3200


class ElevenLabsFailed(ProviderFailed):
    def __init__(self, message: str, status_code: int | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


def _retry_after(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


class ElevenLabsTts:
    name = "elevenlabs"

    def __init__(
        self,
        api_key: str,
        voice: str,
        *,
        model: str = "eleven_flash_v2_5",
        output_format: str = "pcm_16000",
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout_s: float = 3.0,
    ) -> None:
        match = _FORMAT.match(output_format)
        if match is None:
            raise ValueError(f"ElevenLabs output_format must be pcm_<rate> or ulaw_8000, not {output_format!r}")
        self._ulaw = match.group(1) == "ulaw"
        self.sample_rate = int(match.group(2))
        self.voice_id = f"elevenlabs:{model}:{voice}"
        self._api_key = api_key
        self._voice = voice
        self._model = model
        self._format = output_format
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"xi-api-key": self._api_key})
        return self._session

    async def synthesize(self, text: str) -> Pcm:
        parts = [pcm async for pcm in self.stream(text)]
        return Pcm(b"".join(p.data for p in parts), self.sample_rate)

    async def stream(self, text: str) -> AsyncIterator[Pcm]:
        url = f"{self._base}/v1/text-to-speech/{quote(self._voice, safe='')}/stream"
        try:
            async with self._client().post(
                url, params={"output_format": self._format}, json={"text": text, "model_id": self._model}
            ) as response:
                if response.status >= 400:
                    detail = (await response.text())[:200]
                    raise ElevenLabsFailed(
                        f"ElevenLabs answered HTTP {response.status}: {detail}",
                        response.status,
                        _retry_after(response.headers.get("Retry-After")),
                    )
                if response.content_type.startswith(("application/json", "text/")):
                    raise ElevenLabsFailed(f"ElevenLabs answered {response.content_type!r} instead of audio")
                carry = b""
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    if self._ulaw:
                        yield Pcm(ulaw_decode(chunk), self.sample_rate)
                        continue
                    data = carry + chunk
                    cut = len(data) - len(data) % 2
                    carry = data[cut:]
                    if cut:
                        yield Pcm(data[:cut], self.sample_rate)
        except aiohttp.ClientPayloadError as exc:
            raise ElevenLabsFailed(f"ElevenLabs broke off the audio stream: {type(exc).__name__}") from None
        except aiohttp.ClientConnectionError as exc:
            raise ElevenLabsFailed(f"ElevenLabs is unreachable: {type(exc).__name__}") from None

    async def probe(self) -> None:
        async with self._client().get(f"{self._base}/v1/models") as response:
            if response.status >= 400:
                raise ElevenLabsFailed(f"ElevenLabs answered HTTP {response.status}", response.status)
            await response.read()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
