"""A local ElevenLabs text-to-speech endpoint: `POST /v1/text-to-speech/{voice_id}/stream?output_format=…`
(key in `xi-api-key`), streaming Piper's speech as raw PCM at the asked rate or as µ-law (`ulaw_8000`);
`GET /v1/models` for the health probe."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from aiohttp import web

from secretary.speech.audio import Pcm, ulaw_encode
from tests.support.fake_servers import FakeServer, Fault, abort

_FORMAT = re.compile(r"^(pcm|ulaw)_(\d+)$")


class FakeElevenLabs(FakeServer):
    def __init__(self, say: Callable[[str, int], Pcm], api_key: str) -> None:
        super().__init__()
        self._say = say
        self._key = api_key

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self.stream)
        app.router.add_get("/v1/models", self.models)
        return app

    async def _refuse(self, request: web.Request) -> web.Response | None:
        if request.headers.get("xi-api-key") != self._key:
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        error = self.error_response()
        if error is not None:
            return error
        if self.fault is Fault.HANG:
            await self.hang()
            return web.json_response({"detail": "server stopped"}, status=503)
        return None

    async def models(self, request: web.Request) -> web.Response:
        refused = await self._refuse(request)
        return refused or web.json_response([{"model_id": "eleven_flash_v2_5", "can_do_text_to_speech": True}])

    async def stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        output_format = request.query.get("output_format", "mp3_44100_128")
        self.requests.append({"voice": request.match_info["voice_id"], "format": output_format, "body": body})
        refused = await self._refuse(request)
        if refused is not None:
            return refused
        if self.fault is Fault.MALFORMED:
            return web.Response(body=b'{"detail": {"status": "quota_', content_type="application/json")
        match = _FORMAT.match(output_format)
        if match is None:
            return web.json_response({"detail": "this fake streams pcm_* and ulaw_8000 only"}, status=400)
        rate = int(match.group(2))
        pcm = await asyncio.to_thread(self._say, body["text"], rate)
        data = ulaw_encode(pcm.data) if match.group(1) == "ulaw" else pcm.data
        response = web.StreamResponse(
            headers={"Content-Type": "audio/basic" if match.group(1) == "ulaw" else "audio/pcm"}
        )
        await response.prepare(request)
        step = len(data) // max(1, round(pcm.duration_s * 10)) or len(data)  # ~100 ms pieces
        step -= step % 2
        for index, offset in enumerate(range(0, len(data), max(2, step))):
            await response.write(data[offset : offset + max(2, step)])
            await asyncio.sleep(0.002)
            if index == 2 and self.fault is Fault.STALL:
                await self.hang()
                return response
            if index == 2 and self.fault is Fault.DISCONNECT:
                await abort(request)
                return response
        await response.write_eof()
        return response
