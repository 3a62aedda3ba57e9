"""The admin API under /api/v1/admin (domains, secretaries, directory, knowledge documents, calls, live calls,
messages, credentials, dialplan, provider health) and its OpenAPI document at /api/v1/openapi.json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ivr_service.admin import calls, credentials, dialplan, documents, live, messages, secretaries
from ivr_service.admin.context import (
    AdminRequest,
    AdminServices,
    DatabaseRequired,
    Forbidden,
    Unauthorized,
    bearer_key,
    check_path_parameters,
)
from ivr_service.admin.openapi import openapi_document
from ivr_service.admin.registry import Operation
from ivr_service.spool import AudioSpool
from secretary.access.api_keys import Principal
from secretary.runtime import Runtime

OPERATIONS: list[Operation] = [
    *secretaries.OPERATIONS,
    *documents.OPERATIONS,
    *calls.OPERATIONS,
    *messages.OPERATIONS,
    *credentials.OPERATIONS,
    *dialplan.OPERATIONS,
    *live.OPERATIONS,
]
OPENAPI_PATH = "/api/v1/openapi.json"


Authenticate = Callable[[web.Request, AdminServices], Awaitable[Principal]]


async def bearer_principal(request: web.Request, services: AdminServices) -> Principal:
    """The API's own clients: `Authorization: Bearer <API key>`."""
    key = bearer_key(request)
    if key is None:
        raise Unauthorized("send 'Authorization: Bearer <API key>' (create one with `voiceai apikey create`)")
    principal = await services.keys.authenticate(key)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    return principal


def authorize(request: web.Request, principal: Principal, operation: Operation) -> None:
    """What a caller may do beyond its domain (which `AdminRequest.domain` checks): the one place both the API
    and the console pass through."""
    if operation.superadmin_only and not principal.is_superadmin:
        raise Forbidden("this needs a superadmin key")
    check_path_parameters(request)


def route(operation: Operation, services: AdminServices | None, authenticate: Authenticate) -> web.Handler:  # type: ignore[name-defined]
    """The operation's handler behind `authenticate` (a bearer key here, a session in the console)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if services is None:
            raise DatabaseRequired(
                "the admin API manages secretaries, keys and records in the FusionPBX database: set DATABASE_URL "
                "(without it, secretaries come from the YAML file and are edited there)"
            )
        principal = await authenticate(request, services)
        authorize(request, principal, operation)
        return await operation.handler(request, AdminRequest(request, services, principal, operation))

    handle.__name__ = operation.operation_id
    return handle


def setup_admin(app: web.Application, runtime: Runtime, spool: AudioSpool) -> AdminServices | None:
    """The API's routes; returns the services they work with (None without a database) for the console."""
    services = AdminServices.create(runtime, spool) if runtime.settings.admin.enabled else None
    if not runtime.settings.admin.enabled:
        return None
    for operation in OPERATIONS:
        app.router.add_route(operation.method, operation.full_path, route(operation, services, bearer_principal))
    document = openapi_document(OPERATIONS)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(OPENAPI_PATH, openapi)
    return services
