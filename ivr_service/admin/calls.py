"""Calls of a domain: a filtered, paginated list; one call with its transcript and turn timings; and the
audio of a turn (the caller's recording, the secretary's reply), served only from that domain's call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

from aiohttp import web

from ivr_service.admin.context import AdminRequest, model_response
from ivr_service.admin.models import CallDetail, CallFilters, CallSummary, Page, summary_of
from ivr_service.admin.registry import PREFIX, Operation
from ivr_service.api_models import parse_call_uuid
from secretary.calls.models import CallRecord
from secretary.errors import BadInput, NotFound, UnknownCall


async def list_calls(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    filters = admin.query(CallFilters)
    records = await admin.services.calls.list_calls(
        domain.domain_uuid,
        started_from=filters.from_,
        started_to=filters.to,
        outcome=filters.outcome,
        transport=filters.transport,
        caller=filters.caller,
        offset=filters.offset,
        limit=filters.limit + 1,
    )
    return model_response(Page[CallSummary].of([summary_of(r, n) for r, n in records], filters))


async def _call(admin: AdminRequest) -> tuple[UUID, CallRecord]:
    domain = await admin.domain()
    call_uuid = parse_call_uuid(admin.request.match_info["call_uuid"])
    record = await admin.services.calls.get(domain.domain_uuid, call_uuid)
    if record is None:
        raise UnknownCall(f"unknown call {call_uuid}")
    return domain.domain_uuid, record


async def get_call(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain_uuid, record = await _call(admin)
    base = f"{PREFIX}/domains/{domain_uuid}/calls/{record.call_uuid}"
    return model_response(CallDetail.build(record, base))


def _turn_index(raw: str) -> int:
    try:
        index = int(raw)
    except ValueError:
        raise BadInput("turn_index must be a number", field="turn_index", code="invalid_field") from None
    return index


async def _turn_audio(admin: AdminRequest, kind: str) -> web.StreamResponse:
    domain_uuid, record = await _call(admin)
    index = _turn_index(admin.request.match_info["turn_index"])
    turn = next((t for t in record.turns if t.index == index), None)
    recorded = None if turn is None else (turn.recording_file if kind == "recording" else turn.reply_file)
    if recorded is None:
        raise NotFound(f"turn {index} of this call has no {kind}")
    spool = admin.services.spool
    # Only this call's folder (replies may also come from the shared TTS cache of fixed prompts).
    allowed = (
        [spool.inbox(domain_uuid, record.call_uuid)]
        if kind == "recording"
        else [spool.outbox(domain_uuid, record.call_uuid), spool.root / "cache"]
    )
    path = _confined(spool.to_local(recorded), allowed)
    if path is None or not await asyncio.to_thread(path.is_file):
        raise NotFound(f"the {kind} of turn {index} is no longer on disk")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def _confined(path: Path | None, allowed: list[Path]) -> Path | None:
    if path is None:
        return None
    resolved = path.resolve()
    return resolved if any(resolved.is_relative_to(a.resolve()) for a in allowed) else None


async def get_turn_recording(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    return await _turn_audio(admin, "recording")


async def get_turn_reply(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    return await _turn_audio(admin, "reply")


OPERATIONS = [
    Operation(
        "GET",
        "/domains/{domain}/calls",
        list_calls,
        "Calls, newest first, with filters",
        "calls",
        query=CallFilters,
        response=Page[CallSummary],
    ),
    Operation(
        "GET",
        "/domains/{domain}/calls/{call_uuid}",
        get_call,
        "One call: transcript, turn timings, recording links",
        "calls",
        response=CallDetail,
    ),
    Operation(
        "GET",
        "/domains/{domain}/calls/{call_uuid}/turns/{turn_index}/recording",
        get_turn_recording,
        "What the caller said in a turn (WAV)",
        "calls",
        binary="audio/wav",
    ),
    Operation(
        "GET",
        "/domains/{domain}/calls/{call_uuid}/turns/{turn_index}/reply",
        get_turn_reply,
        "What the secretary answered in a turn (WAV)",
        "calls",
        binary="audio/wav",
    ),
]
