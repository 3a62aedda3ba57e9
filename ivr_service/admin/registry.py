"""The admin API's routes as data: each `Operation` is registered with aiohttp *and* described in the
OpenAPI document from the same entry, so the two can't drift apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import BaseModel

if TYPE_CHECKING:
    from ivr_service.admin.context import AdminRequest

AdminHandler = Callable[[web.Request, "AdminRequest"], Awaitable[web.StreamResponse]]
PREFIX = "/api/v1/admin"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # below PREFIX, aiohttp style: /domains/{domain}/calls
    handler: AdminHandler
    summary: str
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    upload: bool = False  # multipart/form-data `file`, or the raw document as the body
    response: type[BaseModel] | None = None
    status: int = 200
    binary: str | None = None  # media type of a file response (audio/wav)
    superadmin_only: bool = False
    errors: tuple[int, ...] = field(default=(400, 401, 404))

    @property
    def full_path(self) -> str:
        return PREFIX + self.path

    @property
    def operation_id(self) -> str:
        return self.handler.__name__
