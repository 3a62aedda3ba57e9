"""The OpenAPI 3.1 document of the admin API, generated from the operation table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ivr_service.admin.registry import Operation

_PATH_PARAM = re.compile(r"\{(\w+)\}")
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "domain": {"type": "string", "description": "domain uuid or domain name"},
    "call_uuid": {"type": "string", "format": "uuid"},
    "message_uuid": {"type": "string", "format": "uuid"},
    "document_uuid": {"type": "string", "format": "uuid"},
    "turn_index": {"type": "integer", "minimum": 1},
    "extension": {"type": "string"},
    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
}
_ERROR_TEXT = {
    400: "Invalid request: `error.field` names the offending field",
    401: "Missing or unknown API key",
    403: "This key may not do that",
    404: "Not found, or belongs to a domain this key may not see",
    409: "Conflicts with how the service is configured",
    413: "Body larger than the configured limit",
    415: "Unsupported document type",
    422: "The document could not be read",
    429: "Too many of these at once (e.g. a domain's documents being added): retry when one is done",
    503: "A dependency (database, knowledge base, secret key) is unavailable",
}


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
            }
        },
    }


def openapi_document(operations: list[Operation], version: str = "1") -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for op in operations:
        models.update(m for m in (op.body, op.response, op.query) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, definitions = models_json_schema(
        [(m, "validation" if m is not None else "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    refs = {m: keyed[(m, "validation")] for m in ordered}
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Error"] = _error_schema()

    paths: dict[str, Any] = {}
    for op in operations:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS.get(name, {"type": "string"})}
            for name in _PATH_PARAM.findall(op.path)
        ]
        if op.query is not None:
            query_schema = op.query.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                    | ({"description": prop["description"]} if "description" in prop else {})
                )
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "security": [{"apiKey": []}],
            "responses": {},
        }
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[op.body]}}}
        elif op.upload:
            entry["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        if op.binary is not None:
            content: dict[str, Any] = {op.binary: {"schema": {"type": "string", "format": "binary"}}}
        elif op.response is not None:
            content = {"application/json": {"schema": refs[op.response]}}
        else:
            content = {}
        entry["responses"][str(op.status)] = (
            {"description": "OK", "content": content} if content else {"description": "OK"}
        )
        for status in sorted(set(op.errors) | {401}):
            entry["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths.setdefault(op.full_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voiceai-secretary admin API",
            "version": version,
            "description": "Manage AI secretaries per FusionPBX domain. Authenticate with "
            "`Authorization: Bearer <key>` (`voiceai apikey create`). A domain key sees only its domain: "
            "anything of another domain answers 404.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
