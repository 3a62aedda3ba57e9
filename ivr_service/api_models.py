"""Request models of the v1 API (sans-I/O: validated from parsed JSON, testable without a server)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from secretary.errors import BadInput

M = TypeVar("M", bound=BaseModel)

# What PostgreSQL text can't hold (NUL, lone surrogates) and what has no place in a name or a number.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _printable(value: Any) -> Any:
    """Caller-supplied text (caller ID, hangup cause) is kept, never refused: one odd character from a SIP
    header must not cost the call its record or the caller their message, so it becomes U+FFFD (before
    pydantic's own check, which refuses a lone surrogate)."""
    return _UNPRINTABLE.sub("\ufffd", value) if isinstance(value, str) else value


def is_printable(value: str) -> bool:
    return _UNPRINTABLE.search(value) is None


def _identifier(value: str) -> str:
    if not is_printable(value):
        raise ValueError("must not contain control characters")
    return value


CallerText = Annotated[str, BeforeValidator(_printable)]
Identifier = Annotated[str, AfterValidator(_identifier)]


class DomainReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    domain_uuid: Identifier | None = Field(default=None, max_length=64)
    domain_name: Identifier | None = Field(default=None, max_length=253)


class StartCall(DomainReference):
    call_uuid: UUID
    caller_id_number: CallerText = Field(default="", max_length=64)
    caller_id_name: CallerText = Field(default="", max_length=128)
    destination_number: CallerText = Field(default="", max_length=64)
    resumed_from: Literal["realtime"] | None = None  # the call lost its realtime bridge mid-call and goes on here


class TurnByFile(DomainReference):
    recording_file: str = Field(min_length=1, max_length=4096)


class Dtmf(DomainReference):
    digits: str = Field(pattern=r"^[0-9*#]{1,32}$")


class EndCall(DomainReference):
    """How the call ended, as the Lua script saw it: `ended_by` the caller (hung up), a `transfer` or `hangup`
    reply, or its own `fallback` (`reason` says why; `destination` is where it sent the caller). Without
    `ended_by` (an older script) the service's own view stands."""

    hangup_cause: CallerText | None = Field(default=None, max_length=64)
    ended_by: Literal["caller", "transfer", "hangup", "fallback"] | None = None
    reason: CallerText | None = Field(default=None, max_length=256)
    destination: str | None = Field(default=None, pattern=r"^[A-Za-z0-9*#+_-]{1,32}$")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; what Python's parser gives up on (nesting past the recursion limit, integers
    past its 4,300-digit limit) is bad JSON like any other."""
    try:
        return json.loads(raw or b"null")
    except RecursionError:
        raise BadInput("the request body is nested too deeply", field="body", code="invalid_json") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInput("the request body is not valid JSON", field="body", code="invalid_json") from None
    except ValueError:  # int() refuses integers past sys.get_int_max_str_digits()
        raise BadInput("the request body has a number too long to read", field="body", code="invalid_json") from None


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def refuse_unstorable_text(payload: Any) -> Any:
    """An admin's JSON is stored as given, and PostgreSQL text can't hold NUL or a lone surrogate: such a
    string is a 400 naming its field, not a 500 from the database. (A loop, not recursion: the payload may be
    nested as deep as the JSON parser allows.)"""
    pending: list[tuple[str, Any]] = [("", payload)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                field = path or "body"
                raise BadInput(
                    f"{field}: text may not contain NUL or unpaired surrogates", field=field, code="invalid_field"
                )
        elif isinstance(value, dict):
            pending += [(path or "body", key) for key in value]
            pending += [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            pending += [(f"{path}.{index}" if path else str(index), item) for index, item in enumerate(value)]
    return payload


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
