"""A local Ollama endpoint for embeddings: `POST /api/embed` (`{"model", "input": [...]}` →
`{"model", "embeddings": [[...]], ...}`, real sentence vectors from the given `embed`) and `GET /api/tags`
(the health probe); every fault of `fake_servers`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from tests.support.fake_openai import json_faults
from tests.support.fake_servers import FakeServer, Fault


class FakeOllama(FakeServer):
    def __init__(self, embed: Callable[[list[str]], list[list[float]]]) -> None:
        super().__init__()
        self._embed = embed

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/embed", self.embed)
        app.router.add_get("/api/tags", self.tags)
        return app

    async def _refuse(self) -> web.Response | None:
        error = self.error_response()
        if error is not None:
            return error
        if self.fault is Fault.HANG:
            await self.hang()
            return web.json_response({"error": "server stopped"}, status=503)
        return None

    async def tags(self, request: web.Request) -> web.Response:
        return await self._refuse() or web.json_response({"models": [{"name": "nomic-embed-text:latest"}]})

    async def embed(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.requests.append({"route": "embed", "model": body.get("model"), "input": texts})
        refused = await self._refuse()
        if refused is not None:
            return refused
        vectors = await asyncio.to_thread(self._embed, texts)
        words = sum(len(t.split()) for t in texts)
        payload = json.dumps({"model": body.get("model"), "embeddings": vectors, "prompt_eval_count": words})
        return await json_faults(request, self, payload)
