"""Per-request plumbing of the admin API: authentication, the domain a request may touch, bodies and queries
read with limits, and JSON responses. Tenancy is enforced here, once: a domain key naming any other domain
gets exactly what an unknown domain gets (404), so it can't even learn that the domain exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from ivr_service.admin.registry import Operation
from ivr_service.api_models import is_printable, parse_json, parse_model, refuse_unstorable_text
from ivr_service.spool import AudioSpool
from secretary.access.api_keys import ApiKeyStore, Principal
from secretary.calls.record_store import PostgresCallRecordStore
from secretary.db.database import Database
from secretary.errors import BadInput, SecretaryError, UnknownDomain
from secretary.fusionpbx.destinations import PbxDestinations
from secretary.fusionpbx.domains import Domain, DomainDirectory
from secretary.runtime import Runtime
from secretary.tenants.pg_store import PostgresSecretaryStore

M = TypeVar("M", bound=BaseModel)


class Unauthorized(SecretaryError):
    code = "unauthorized"
    http_status = 401


class Forbidden(SecretaryError):
    code = "forbidden"
    http_status = 403


class DatabaseRequired(SecretaryError):
    code = "database_required"
    http_status = 409


class PayloadTooLarge(BadInput):
    def __init__(self, limit: int, field: str = "body") -> None:
        super().__init__(f"the request body is larger than {limit} bytes", field=field, code="too_large")


@dataclass
class AdminServices:
    """What the admin routes work with; built once per app when a database is configured."""

    runtime: Runtime
    database: Database
    spool: AudioSpool
    keys: ApiKeyStore
    domains: DomainDirectory
    destinations: PbxDestinations
    secretaries: PostgresSecretaryStore
    calls: PostgresCallRecordStore

    @classmethod
    def create(cls, runtime: Runtime, spool: AudioSpool) -> AdminServices | None:
        database = runtime.database
        if database is None:
            return None
        return cls(
            runtime=runtime,
            database=database,
            spool=spool,
            keys=ApiKeyStore(database),
            domains=DomainDirectory(database),
            destinations=PbxDestinations(database),
            secretaries=PostgresSecretaryStore(database, runtime.credentials),
            calls=PostgresCallRecordStore(database),
        )


@dataclass
class AdminRequest:
    request: web.Request
    services: AdminServices
    principal: Principal
    operation: Operation

    @property
    def settings(self) -> Any:
        return self.services.runtime.settings.admin

    async def domain(self) -> Domain:
        """The domain named in the path (uuid or name), if this key may see it; else 404 as if unknown."""
        reference = self.request.match_info["domain"]
        if len(reference) > 253:
            raise BadInput("domain is too long", field="domain", code="invalid_field")
        try:
            domain = await self.services.domains.get(reference)
        except UnknownDomain:
            raise UnknownDomain(f"unknown domain {reference!r}") from None
        if not self.principal.may_see(domain.domain_uuid):
            raise UnknownDomain(f"unknown domain {reference!r}")
        return domain

    def query_values(self) -> dict[str, str]:
        return dict(self.request.query)

    def query(self, model: type[M]) -> M:
        parsed = parse_model(model, self.query_values())
        limit = getattr(parsed, "limit", None)
        if isinstance(limit, int) and limit > self.settings.max_page_size:
            if "limit" in self.query_values():
                raise BadInput(f"limit: at most {self.settings.max_page_size}", field="limit", code="invalid_field")
            parsed = parsed.model_copy(update={"limit": self.settings.max_page_size})
        return parsed

    async def body(self, model: type[M]) -> M:
        return parse_model(model, await self.json())

    async def json(self) -> Any:
        return refuse_unstorable_text(parse_json(await read_limited(self.request, self.settings.max_json_bytes)))


async def read_limited(request: web.Request, limit: int, field: str = "body") -> bytes:
    """Read a body of at most `limit` bytes without ever holding more: a declared larger size is refused
    before reading; a chunked body is counted as it arrives and refused as soon as it passes the limit."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit, field)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit, field)
        chunks.append(chunk)
    return b"".join(chunks)


def model_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def bearer_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    key = key.strip()
    if not key.isascii() or not key.isprintable():  # aiohttp keeps undecodable bytes as surrogates
        raise Unauthorized("the API key in the Authorization header has characters no API key has")
    return key


def check_path_parameters(request: web.Request) -> None:
    """A path parameter (a domain, an extension, a name) with a control character names nothing: 400 before
    it reaches PostgreSQL, whose text can't hold a NUL."""
    for name, value in request.match_info.items():
        if not is_printable(value):
            raise BadInput(f"{name} in the path must not contain control characters", field=name, code="invalid_field")
