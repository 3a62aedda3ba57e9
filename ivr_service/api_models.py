"""Request models of the v1 API (sans-I/O: validated from parsed JSON, testable without a server)."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from secretary.errors import BadInput

M = TypeVar("M", bound=BaseModel)


class DomainReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    domain_uuid: str | None = Field(default=None, max_length=64)
    domain_name: str | None = Field(default=None, max_length=253)


class StartCall(DomainReference):
    call_uuid: UUID
    caller_id_number: str = Field(default="", max_length=64)
    caller_id_name: str = Field(default="", max_length=128)
    destination_number: str = Field(default="", max_length=64)


class TurnByFile(DomainReference):
    recording_file: str = Field(min_length=1, max_length=4096)


class Dtmf(DomainReference):
    digits: str = Field(pattern=r"^[0-9*#]{1,32}$")


class EndCall(DomainReference):
    hangup_cause: str | None = Field(default=None, max_length=64)


def parse_model(model: type[M], payload: Any) -> M:
    """Validate `payload`; a failure names the first offending field, as the v1 contract promises."""
    if not isinstance(payload, dict):
        raise BadInput("the request body must be a JSON object", field="body", code="invalid_json")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        kind = "missing" if first["type"] == "missing" else "invalid"
        raise BadInput(f"{field}: {first['msg']}", field=field, code=f"{kind}_field") from None


def parse_call_uuid(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise BadInput("call_uuid in the path is not a UUID", field="call_uuid", code="invalid_field") from None
