"""The admin API under /api/v1/admin (domains, secretaries, directory, knowledge documents, calls, messages,
credentials) and its OpenAPI document at /api/v1/openapi.json."""

from __future__ import annotations

from aiohttp import web

from ivr_service.admin import calls, credentials, documents, messages, secretaries
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
from secretary.runtime import Runtime

OPERATIONS: list[Operation] = [
    *secretaries.OPERATIONS,
    *documents.OPERATIONS,
    *calls.OPERATIONS,
    *messages.OPERATIONS,
    *credentials.OPERATIONS,
]
OPENAPI_PATH = "/api/v1/openapi.json"


def _route(operation: Operation, services: AdminServices | None) -> web.Handler:  # type: ignore[name-defined]
    async def handle(request: web.Request) -> web.StreamResponse:
        if services is None:
            raise DatabaseRequired(
                "the admin API manages secretaries, keys and records in the FusionPBX database: set DATABASE_URL "
                "(without it, secretaries come from the YAML file and are edited there)"
            )
        key = bearer_key(request)
        if key is None:
            raise Unauthorized("send 'Authorization: Bearer <API key>' (create one with `voiceai apikey create`)")
        principal = await services.keys.authenticate(key)
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        if operation.superadmin_only and not principal.is_superadmin:
            raise Forbidden("this needs a superadmin key")
        check_path_parameters(request)
        return await operation.handler(request, AdminRequest(request, services, principal, operation))

    handle.__name__ = operation.operation_id
    return handle


def setup_admin(app: web.Application, runtime: Runtime, spool: AudioSpool) -> None:
    services = AdminServices.create(runtime, spool) if runtime.settings.admin.enabled else None
    if not runtime.settings.admin.enabled:
        return
    for operation in OPERATIONS:
        app.router.add_route(operation.method, operation.full_path, _route(operation, services))
    document = openapi_document(OPERATIONS)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(OPENAPI_PATH, openapi)
