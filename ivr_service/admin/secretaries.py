"""Domains, their secretary (create/replace, read, partial update, delete), its transfer directory and the
FusionPBX destinations it can transfer to. Directory entries and the fallback are checked against the
domain's enabled extensions, ring groups, queues, IVR menus and voicemail boxes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from ivr_service.admin.context import AdminRequest, Forbidden, model_response
from ivr_service.admin.models import (
    Deleted,
    DestinationsOut,
    DirectoryBody,
    DirectoryOut,
    DomainOut,
    Page,
    Paging,
    SecretaryInput,
    SecretaryOut,
    SecretaryPatch,
)
from ivr_service.admin.registry import Operation
from ivr_service.api_models import parse_model
from secretary.credentials.endpoints import EndpointNotAllowed, endpoints_of
from secretary.credentials.resolver import operator_owned_changes
from secretary.errors import BadInput, NoSecretary, NotFound
from secretary.fusionpbx.domains import Domain
from secretary.tenants.config import SecretaryConfig, TransferTarget


class TargetCheck(BaseModel):
    """`check_targets=false` skips the FusionPBX check (for destinations FusionPBX doesn't list)."""

    model_config = ConfigDict(extra="forbid")

    check_targets: bool = True


async def list_domains(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    paging = admin.query(Paging)
    if admin.principal.is_superadmin:
        found = await admin.services.domains.list_domains(paging.offset, paging.limit + 1)
    else:
        assert admin.principal.domain_uuid is not None
        own = await admin.services.domains.get(admin.principal.domain_uuid)
        found = [own][paging.offset : paging.offset + paging.limit + 1]
    return model_response(Page[DomainOut].of(found, paging))


async def get_domain(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    return model_response(await admin.domain())


async def _stored(admin: AdminRequest, domain: Domain) -> SecretaryConfig:
    config = await admin.services.secretaries.admin_get(domain.domain_uuid)
    if config is None:
        raise NoSecretary(f"domain {domain.domain_name} has no AI secretary")
    return config


def _validated(payload: dict[str, Any], domain: Domain) -> SecretaryConfig:
    try:
        return SecretaryConfig.model_validate(
            payload | {"domain_uuid": domain.domain_uuid, "domain_name": domain.domain_name}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadInput(f"{field}: {first['msg']}", field=field, code="invalid_field") from None


async def _check_targets(admin: AdminRequest, config: SecretaryConfig) -> None:
    if not admin.query(TargetCheck).check_targets:
        return
    numbers = [t.extension for t in config.directory] + [config.fallback_destination]
    unknown = await admin.services.destinations.unknown_numbers(config.domain_uuid, numbers)
    if config.fallback_destination in unknown:
        raise BadInput(
            f"fallback_destination: {config.fallback_destination} is no enabled extension, ring group, queue, "
            "IVR menu or voicemail of this domain",
            field="fallback_destination",
            code="unknown_target",
        )
    for index, target in enumerate(config.directory):
        if target.extension in unknown:
            raise BadInput(
                f"directory.{index}.extension: {target.extension} is no enabled extension, ring group, queue, "
                "IVR menu or voicemail of this domain",
                field=f"directory.{index}.extension",
                code="unknown_target",
            )


def _check_operator_fields(admin: AdminRequest, before: SecretaryConfig | None, after: SecretaryConfig) -> None:
    """`*_env` entries name the operator's environment: a domain key may keep them, not create or change them."""
    if admin.principal.is_superadmin:
        return
    changed = operator_owned_changes(before, after)
    if changed:
        raise Forbidden(
            f"{changed[0]}: environment credentials are set by the operator; store this domain's own key "
            "(POST /domains/{domain}/credentials) and name it with api_key_ref / password_ref / webhook_secret_ref"
        )


async def _check_endpoints(admin: AdminRequest, before: SecretaryConfig | None, after: SecretaryConfig) -> None:
    """A domain key may point its endpoints at public hosts (or what the operator allowed), not at the
    operator's own network; one already stored is kept as it is (it is checked again where it is used)."""
    if admin.principal.is_superadmin:
        return
    policy = admin.services.runtime.providers.endpoints
    kept = {e.url for e in endpoints_of(before)} if before is not None else set()
    for endpoint in endpoints_of(after):
        if endpoint.url in kept:
            continue
        try:
            await policy.verify(endpoint, after, unresolved_ok=True)
        except EndpointNotAllowed as exc:
            raise BadInput(f"{endpoint.field}: {exc}", field=endpoint.field, code="endpoint_not_allowed") from None


async def _save(admin: AdminRequest, config: SecretaryConfig, before: SecretaryConfig | None) -> None:
    _check_operator_fields(admin, before, config)
    await _check_endpoints(admin, before, config)
    await _check_targets(admin, config)
    await admin.services.secretaries.save(config)
    admin.services.runtime.secretaries.invalidate()


async def get_secretary(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    config = await _stored(admin, await admin.domain())
    return model_response(SecretaryOut.model_validate(config.model_dump()))


async def put_secretary(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    payload = await admin.json()
    parse_model(SecretaryInput, payload)  # unknown fields and their names, before the domain is added
    config = _validated(payload, domain)
    before = await admin.services.secretaries.admin_get(domain.domain_uuid)
    await _save(admin, config, before)
    return model_response(SecretaryOut.model_validate(config.model_dump()), status=201 if before is None else 200)


async def patch_secretary(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    payload = await admin.json()
    parse_model(SecretaryPatch, payload)
    current = await _stored(admin, domain)
    config = _validated(current.model_dump(mode="json") | payload, domain)
    await _save(admin, config, current)
    return model_response(SecretaryOut.model_validate(config.model_dump()))


async def delete_secretary(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    if not await admin.services.secretaries.delete(domain.domain_uuid):
        raise NoSecretary(f"domain {domain.domain_name} has no AI secretary")
    admin.services.runtime.secretaries.invalidate()
    return model_response(Deleted())


async def get_directory(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    config = await _stored(admin, await admin.domain())
    return model_response(DirectoryOut(directory=config.directory))


async def put_directory(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    body = await admin.body(DirectoryBody)
    current = await _stored(admin, domain)
    config = current.model_copy(update={"directory": body.directory})
    await _save(admin, config, current)
    return model_response(DirectoryOut(directory=config.directory))


async def add_directory_entry(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    target = await admin.body(TransferTarget)
    current = await _stored(admin, domain)
    if current.target_by_extension(target.extension) is not None:
        raise BadInput(f"extension {target.extension} is already in the directory", field="extension", code="duplicate")
    config = current.model_copy(update={"directory": [*current.directory, target]})
    await _save(admin, config, current)
    return model_response(DirectoryOut(directory=config.directory), status=201)


async def delete_directory_entry(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    extension = request.match_info["extension"]
    current = await _stored(admin, domain)
    kept = [t for t in current.directory if t.extension != extension]
    if len(kept) == len(current.directory):
        raise NotFound(f"extension {extension} is not in the directory")
    config = current.model_copy(update={"directory": kept})
    await admin.services.secretaries.save(config)
    admin.services.runtime.secretaries.invalidate()
    return model_response(DirectoryOut(directory=config.directory))


async def list_destinations(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    return model_response(
        DestinationsOut(items=await admin.services.destinations.list_destinations(domain.domain_uuid))
    )


OPERATIONS = [
    Operation(
        "GET",
        "/domains",
        list_domains,
        "Domains this key may manage",
        "domains",
        query=Paging,
        response=Page[DomainOut],
        errors=(400, 401),
    ),
    Operation("GET", "/domains/{domain}", get_domain, "One domain", "domains", response=DomainOut),
    Operation(
        "GET",
        "/domains/{domain}/secretary",
        get_secretary,
        "The domain's secretary",
        "secretaries",
        response=SecretaryOut,
    ),
    Operation(
        "PUT",
        "/domains/{domain}/secretary",
        put_secretary,
        "Create or replace the domain's secretary",
        "secretaries",
        query=TargetCheck,
        body=SecretaryInput,
        response=SecretaryOut,
        errors=(400, 401, 403, 404, 413),
    ),
    Operation(
        "PATCH",
        "/domains/{domain}/secretary",
        patch_secretary,
        "Change some fields of the secretary",
        "secretaries",
        query=TargetCheck,
        body=SecretaryPatch,
        response=SecretaryOut,
        errors=(400, 401, 403, 404, 413),
    ),
    Operation(
        "DELETE",
        "/domains/{domain}/secretary",
        delete_secretary,
        "Remove the domain's secretary",
        "secretaries",
        response=Deleted,
    ),
    Operation(
        "GET",
        "/domains/{domain}/directory",
        get_directory,
        "The transfer directory",
        "directory",
        response=DirectoryOut,
    ),
    Operation(
        "PUT",
        "/domains/{domain}/directory",
        put_directory,
        "Replace the transfer directory",
        "directory",
        query=TargetCheck,
        body=DirectoryBody,
        response=DirectoryOut,
        errors=(400, 401, 404, 413),
    ),
    Operation(
        "POST",
        "/domains/{domain}/directory",
        add_directory_entry,
        "Add a directory entry",
        "directory",
        query=TargetCheck,
        body=TransferTarget,
        response=DirectoryOut,
        status=201,
        errors=(400, 401, 404, 413),
    ),
    Operation(
        "DELETE",
        "/domains/{domain}/directory/{extension}",
        delete_directory_entry,
        "Remove a directory entry",
        "directory",
        response=DirectoryOut,
    ),
    Operation(
        "GET",
        "/domains/{domain}/destinations",
        list_destinations,
        "FusionPBX destinations a directory entry can point to",
        "directory",
        response=DestinationsOut,
    ),
]
