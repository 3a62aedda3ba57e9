"""Provider credentials of a domain: stored encrypted, referred to by name from its provider specs
(`api_key_ref`) and messages settings (`webhook_secret_ref`, `smtp.password_ref`). Secrets go in, never out."""

from __future__ import annotations

import re

from aiohttp import web

from ivr_service.admin.context import AdminRequest, model_response
from ivr_service.admin.models import CredentialBody, CredentialsOut, Deleted
from ivr_service.admin.registry import Operation
from secretary.credentials.store import CredentialStore
from secretary.errors import BadInput, NotFound

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _store(admin: AdminRequest) -> CredentialStore:
    store = admin.services.runtime.credentials
    assert store is not None  # the admin API only runs with a database
    return store


def _name(admin: AdminRequest) -> str:
    name = admin.request.match_info["name"]
    if not _NAME.match(name):
        raise BadInput("name: letters, digits, '.', '_' or '-', at most 64", field="name", code="invalid_field")
    return name


async def list_credentials(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    return model_response(CredentialsOut(items=await _store(admin).list(domain.domain_uuid)))


async def put_credential(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    name = _name(admin)
    body = await admin.body(CredentialBody)
    created = await _store(admin).put(domain.domain_uuid, name, body.secret.get_secret_value(), body.description)
    admin.services.runtime.secretaries.invalidate()
    items = [c for c in await _store(admin).list(domain.domain_uuid) if c.name == name]
    return model_response(CredentialsOut(items=items), status=201 if created else 200)


async def delete_credential(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    name = _name(admin)
    if not await _store(admin).delete(domain.domain_uuid, name):
        raise NotFound(f"unknown credential {name!r}")
    admin.services.runtime.secretaries.invalidate()
    return model_response(Deleted())


OPERATIONS = [
    Operation(
        "GET",
        "/domains/{domain}/credentials",
        list_credentials,
        "Stored provider credentials (names and hints, never secrets)",
        "credentials",
        response=CredentialsOut,
    ),
    Operation(
        "PUT",
        "/domains/{domain}/credentials/{name}",
        put_credential,
        "Store a credential, encrypted with VOICEAI_SECRET_KEY",
        "credentials",
        body=CredentialBody,
        response=CredentialsOut,
        errors=(400, 401, 404, 413, 503),
    ),
    Operation(
        "DELETE",
        "/domains/{domain}/credentials/{name}",
        delete_credential,
        "Remove a credential",
        "credentials",
        response=Deleted,
    ),
]
