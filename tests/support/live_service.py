"""Runs the real ivr_service on a free loopback port in a background thread with its own event loop, for
callers that block (the Lua interpreter's emulated mod_curl) or for end-to-end tests over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ivr_service.app import create_app
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.support.threaded_app import serve_app


@contextmanager
def live_ivr_service(settings: Settings, models: LocalModels) -> Iterator[tuple[str, Runtime]]:
    runtime = Runtime.create(settings, models=models)
    with serve_app(create_app(runtime, own_runtime=True)) as url:
        yield url, runtime
