"""The two aiohttp applications, each for its own listener: v1 (the routes the Lua script calls, `/health`,
`/metrics`; loopback by default, optionally guarded by a shared secret) and the admin API (with `/health`), so
exposing one never exposes the other. Errors leave both as JSON."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr_service.admin import setup_admin
from ivr_service.admin.context import Unauthorized, bearer_key
from ivr_service.api_models import (
    DomainReference,
    Dtmf,
    EndCall,
    StartCall,
    TurnByFile,
    parse_call_uuid,
    parse_json,
    parse_model,
)
from ivr_service.call_flow import TurnFlow
from ivr_service.console import setup_console
from ivr_service.http_server import body_deadline, handler_args
from ivr_service.spool import AudioSpool, CallUploads
from ivr_service.statuses import status_for
from secretary.errors import SecretaryError
from secretary.runtime import Runtime
from secretary.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
FLOW = web.AppKey("flow", TurnFlow)
WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}
SECRET_HEADER = "X-VoiceAI-Secret"
OPEN_PATHS = frozenset({"/health", "/metrics"})  # health checks and scrapers: no tenant data, no secret needed
UPLOAD_SWEEP_INTERVAL_S = 600.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as `{"error": {"code", "message"[, "field"]}}` and is counted by its code."""
    runtime = request.app[RUNTIME]
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    structlog.contextvars.clear_contextvars()
    started = time.perf_counter()
    code: str | None = None
    try:
        response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        code = "too_large"
        response = error_response(413, code, "request body is too large", "body")
    except web.HTTPException as exc:
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.text or exc.reason)
    except SecretaryError as exc:
        code, status = exc.code, status_for(exc)
        response = error_response(status, code, exc.message, getattr(exc, "field", None))
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "request_refused",
            route=route,
            status=status,
            code=code,
            reason=exc.message,
        )
    except Exception:
        log.exception("request_failed", route=route)
        code = "internal_error"
        response = error_response(500, code, "the service failed to handle this request")
    if response.status in (408, 413):
        response.force_close()  # don't read (drain) the rest of a body we refused
    if code is not None:
        runtime.metrics.errors.labels(code).inc()
    runtime.metrics.requests.labels(route, str(response.status)).inc()
    runtime.metrics.stage_seconds.labels("http").observe(time.perf_counter() - started)
    return response


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > request.app[RUNTIME].settings.ivr.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=request.client_max_size, actual_size=request.content_length)
    return parse_json(await request.read())


async def start_call(request: web.Request) -> web.Response:
    payload = parse_model(StartCall, await read_json(request))
    result = await request.app[FLOW].start(payload)
    return web.json_response(result.wire())


async def call_turn(request: web.Request) -> web.Response:
    call_uuid = parse_call_uuid(request.match_info["call_uuid"])
    flow = request.app[FLOW]
    if request.content_type in WAV_TYPES:
        ref = parse_model(DomainReference, dict(request.query))
        body = await read_wav_body(request)
        result = await flow.turn_from_wav(call_uuid, ref, body)
    else:
        turn = parse_model(TurnByFile, await read_json(request))
        result = await flow.turn_from_file(call_uuid, turn, turn.recording_file)
    return web.json_response(result.wire())


async def read_wav_body(request: web.Request) -> bytes:
    limit = request.app[RUNTIME].settings.spool.max_recording_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.read()
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


async def call_dtmf(request: web.Request) -> web.Response:
    call_uuid = parse_call_uuid(request.match_info["call_uuid"])
    payload = parse_model(Dtmf, await read_json(request))
    return web.json_response((await request.app[FLOW].dtmf(call_uuid, payload)).wire())


async def end_call(request: web.Request) -> web.Response:
    call_uuid = parse_call_uuid(request.match_info["call_uuid"])
    payload = parse_model(EndCall, await read_json(request) if request.can_read_body else {})
    return web.json_response(await request.app[FLOW].end(call_uuid, payload))


async def health(request: web.Request) -> web.Response:
    checks = await request.app[RUNTIME].health()
    healthy = all(state in ("ok", "disabled") for state in checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[RUNTIME].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def shared_secret_guard(secret: str) -> Middleware:
    """Every v1 request but OPEN_PATHS must carry the secret; compared in constant time, never logged."""
    expected = secret.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get(SECRET_HEADER) or bearer_key(request) or ""
            if not hmac.compare_digest(given.encode(errors="replace"), expected):  # '?' is never in a secret
                raise Unauthorized(
                    f"this service needs its shared secret (ivr.shared_secret): send '{SECRET_HEADER}: <secret>' "
                    "or 'Authorization: Bearer <secret>'"
                )
        return await handler(request)

    return guard


def upload_sweeper(uploads: CallUploads, max_age_s: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """Removes the turn uploads of calls that expired without `/end`: once at start-up, then periodically."""

    async def sweep() -> None:
        removed = await asyncio.to_thread(uploads.sweep, max_age_s, time.time())
        if removed:
            log.info("expired_uploads_removed", files=removed)

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(UPLOAD_SWEEP_INTERVAL_S)
            try:
                await sweep()
            except OSError as exc:
                log.error("upload_sweep_failed", reason=str(exc))

    async def context(_app: web.Application) -> AsyncIterator[None]:
        await sweep()
        task = asyncio.create_task(sweep_forever(), name="upload-sweeper")
        yield
        await cancel_and_wait(task)

    return context


def _spool(runtime: Runtime) -> AudioSpool:
    settings = runtime.settings.spool
    return AudioSpool(settings.dir, settings.freeswitch_dir, settings.max_recording_bytes)


def _own(app: web.Application, runtime: Runtime) -> None:
    async def close_runtime(_app: web.Application) -> None:
        await runtime.close()

    app.on_cleanup.append(close_runtime)


def create_app(runtime: Runtime, *, own_runtime: bool = False) -> web.Application:
    """The v1 listener's app. `own_runtime`: close the runtime with the app (the service owns it; tests may
    share one)."""
    settings = runtime.settings
    middlewares: list[Middleware] = [errors_and_metrics, body_deadline(settings.ivr.body_timeout_s)]
    if settings.ivr.shared_secret is not None:
        middlewares.append(shared_secret_guard(settings.ivr.shared_secret.get_secret_value()))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=max(settings.ivr.max_body_bytes, settings.spool.max_recording_bytes),
        handler_args=handler_args(settings.ivr),
    )
    spool = _spool(runtime)
    uploads = CallUploads(spool, settings.spool.max_call_upload_bytes, settings.spool.max_call_uploads)
    app[RUNTIME] = runtime
    app[FLOW] = TurnFlow(runtime, spool, uploads)
    app.router.add_post("/api/v1/calls", start_call)
    app.router.add_post("/api/v1/calls/{call_uuid}/turns", call_turn)
    app.router.add_post("/api/v1/calls/{call_uuid}/dtmf", call_dtmf)
    app.router.add_post("/api/v1/calls/{call_uuid}/end", end_call)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(upload_sweeper(uploads, settings.call_state_ttl_s))

    async def start_background(_app: web.Application) -> None:
        runtime.start_background()

    async def stop_background(_app: web.Application) -> None:
        await runtime.stop_background()

    app.on_startup.append(start_background)
    app.on_cleanup.append(stop_background)
    if own_runtime:
        _own(app, runtime)
    return app


def create_admin_app(runtime: Runtime, *, own_runtime: bool = False) -> web.Application:
    """The admin listener's app: the admin API, its OpenAPI document, the web console (/console) and `/health`
    (for a proxy in front)."""
    admin = runtime.settings.admin
    app = web.Application(  # the same read deadlines and log redaction as the v1 listener
        middlewares=[errors_and_metrics, body_deadline(runtime.settings.ivr.body_timeout_s)],
        client_max_size=max(admin.max_json_bytes, admin.max_upload_bytes),
        handler_args=handler_args(runtime.settings.ivr),
    )
    app[RUNTIME] = runtime
    app.router.add_get("/health", health)
    setup_console(app, setup_admin(app, runtime, _spool(runtime)), admin.console)
    if own_runtime:
        _own(app, runtime)
    return app
