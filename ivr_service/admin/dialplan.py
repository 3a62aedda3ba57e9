"""The domain's secretary dialplan rows: list, install or update (turn or realtime mode), uninstall; each change
flushes FusionPBX's cached dialplan of the domain's context, or says what the admin must still do.

A domain admin's realtime row carries the domain's own bridge token, never the shared `bridge.auth_token`
(whoever reads a dialplan could then open streams for every domain): with only the shared one configured,
a domain admin's realtime install is refused."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ivr_service.admin.context import AdminRequest, model_response
from ivr_service.admin.registry import Operation
from secretary.access.stream_tokens import token_for_dialplan
from secretary.errors import BadInput, SecretaryError
from secretary.fusionpbx.dialplan import DialplanInstaller, service_request
from secretary.fusionpbx.dialplan_cache import CacheFlush, checked_context, flush_dialplan_cache
from secretary.fusionpbx.domains import Domain


class SharedBridgeToken(SecretaryError):
    code = "shared_bridge_token"
    http_status = 409


class DialplanBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["turn", "realtime"] = "turn"
    fallback: str | None = Field(default=None, max_length=20, description="default: the secretary's fallback")
    sample_rate: Literal[8000, 16000] = 16000
    order: int = Field(default=101, ge=0, le=999, description="dialplan_order (lower runs first)")


class DialplanRowOut(BaseModel):
    dialplan_uuid: UUID
    extension: str
    mode: Literal["turn", "realtime"]
    enabled: bool
    order: int


class DialplanOut(BaseModel):
    context: str
    cache_method: str
    installed: list[DialplanRowOut]


class CacheFlushOut(BaseModel):
    method: str
    flushed: bool
    detail: str
    flush_instructions: str | None


class DialplanInstalledOut(BaseModel):
    dialplan_uuid: UUID
    extension: str
    mode: Literal["turn", "realtime"]
    created: bool
    destination: bool
    label: str
    warnings: list[str]
    cache: CacheFlushOut


class DialplanRemovedOut(BaseModel):
    extension: str
    removed: bool
    cache: CacheFlushOut


def _installer(admin: AdminRequest) -> DialplanInstaller:
    return DialplanInstaller(admin.services.database)


async def _domain(admin: AdminRequest) -> Domain:
    """The domain, if its name is a context a cache file can be named after (before anything is written)."""
    domain = await admin.domain()
    checked_context(domain.domain_name)
    return domain


async def _flush(admin: AdminRequest, domain: Domain) -> CacheFlushOut:
    fusionpbx = admin.services.runtime.settings.fusionpbx
    flushed: CacheFlush = await flush_dialplan_cache(fusionpbx, domain.domain_name, admin.services.runtime.esl)
    return CacheFlushOut(method=fusionpbx.cache_method, **flushed.__dict__)


async def get_dialplan(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    rows = await _installer(admin).installed(domain.domain_uuid)
    return model_response(
        DialplanOut(
            context=domain.domain_name,
            cache_method=admin.services.runtime.settings.fusionpbx.cache_method,
            installed=[DialplanRowOut.model_validate(r.__dict__) for r in rows],
        )
    )


def _token_warnings(admin: AdminRequest, domain: Domain, mode: str) -> list[str]:
    if mode != "realtime":
        return []
    scope = token_for_dialplan(admin.services.runtime.settings.bridge, domain.domain_uuid).scope
    if scope == "every domain":
        if not admin.principal.is_superadmin:
            raise SharedBridgeToken(
                "realtime mode needs a bridge token of this domain's own (bridge.token_secret or "
                "bridge.domain_tokens): only the shared bridge.auth_token is configured, and a dialplan carrying "
                "it would let whoever reads it open streams for every domain; ask the operator, or use turn mode"
            )
        return ["the shared bridge.auth_token is written into this domain's dialplan: set bridge.token_secret"]
    if scope == "none":
        return ["no bridge token is configured: the bridge serves any client that reaches it"]
    return []


async def install_dialplan(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await _domain(admin)
    extension = admin.request.match_info["extension"]
    body = await admin.body(DialplanBody)
    config = await admin.services.secretaries.admin_get(domain.domain_uuid)
    fallback = body.fallback or (config.fallback_destination if config is not None else None)
    if not fallback:
        raise BadInput("fallback: the domain has no secretary to take it from", field="fallback")
    warnings = _token_warnings(admin, domain, body.mode)
    if config is None:
        warnings.append("the domain has no AI secretary yet: calls will go to the fallback")
    if not domain.enabled:
        warnings.append(f"domain {domain.domain_name} is disabled in FusionPBX")
    installer = _installer(admin)
    row = service_request(
        admin.services.runtime.settings,
        domain.domain_uuid,
        domain.domain_name,
        extension,
        body.mode,
        fallback,
        config is not None and config.playback_mode == "module",
        sample_rate=body.sample_rate,
        order=body.order,
    )
    row.validate()  # a bad extension or fallback is refused before the database is asked anything
    for conflict in await installer.conflicts(domain.domain_uuid, extension):
        warnings.append(f"{conflict} also answers {extension} in this domain (lower dialplan_order wins)")
    installed = await installer.install(row)
    if not installed.destination:
        warnings.append(
            "this FusionPBX has no dialplan_destination column (4.4 or older): route a number to it with "
            f"'transfer {extension} XML {domain.domain_name}'"
        )
    return model_response(
        DialplanInstalledOut(
            dialplan_uuid=installed.dialplan_uuid,
            extension=extension,
            mode=body.mode,
            created=installed.created,
            destination=installed.destination,
            label=installed.label,
            warnings=warnings,
            cache=await _flush(admin, domain),
        ),
        status=201 if installed.created else 200,
    )


async def uninstall_dialplan(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await _domain(admin)
    extension = admin.request.match_info["extension"]
    removed = await _installer(admin).uninstall(domain.domain_uuid, extension)
    return model_response(DialplanRemovedOut(extension=extension, removed=removed, cache=await _flush(admin, domain)))


OPERATIONS = [
    Operation(
        "GET",
        "/domains/{domain}/dialplan",
        get_dialplan,
        "The domain's secretary dialplan rows (extension, mode) and how FusionPBX caches them",
        "dialplan",
        response=DialplanOut,
    ),
    Operation(
        "PUT",
        "/domains/{domain}/dialplan/{extension}",
        install_dialplan,
        "Install or update the row routing an extension to the secretary; flushes FusionPBX's cache",
        "dialplan",
        body=DialplanBody,
        response=DialplanInstalledOut,
        errors=(400, 401, 404, 409),
    ),
    Operation(
        "DELETE",
        "/domains/{domain}/dialplan/{extension}",
        uninstall_dialplan,
        "Remove the extension's secretary row; flushes FusionPBX's cache",
        "dialplan",
        response=DialplanRemovedOut,
    ),
]
