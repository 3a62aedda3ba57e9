"""Messages the secretary took: list (by status), one, mark handled or new, its audio, redeliver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

from aiohttp import web

from ivr_service.admin.context import AdminRequest, model_response
from ivr_service.admin.models import MessageFilters, MessageOut, MessageUpdate, Page
from ivr_service.admin.registry import PREFIX, Operation
from secretary.errors import BadInput, NotFound
from secretary.messages.models import TakenMessage


def _message_uuid(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise BadInput("message_uuid is not a UUID", field="message_uuid", code="invalid_field") from None


async def _message(admin: AdminRequest) -> tuple[str, TakenMessage]:
    domain = await admin.domain()
    message_uuid = _message_uuid(admin.request.match_info["message_uuid"])
    message = await admin.services.runtime.messages.get(domain.domain_uuid, message_uuid)
    if message is None:
        raise NotFound(f"unknown message {message_uuid}")
    return f"{PREFIX}/domains/{domain.domain_uuid}/messages", message


async def list_messages(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    filters = admin.query(MessageFilters)
    found = await admin.services.runtime.messages.list_messages(
        domain.domain_uuid, status=filters.status, offset=filters.offset, limit=filters.limit + 1
    )
    base = f"{PREFIX}/domains/{domain.domain_uuid}/messages"
    return model_response(Page[MessageOut].of([MessageOut.build(m, base) for m in found], filters))


async def get_message(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    base, message = await _message(admin)
    return model_response(MessageOut.build(message, base))


async def update_message(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    base, message = await _message(admin)
    update = await admin.body(MessageUpdate)
    await admin.services.runtime.messages.set_status(message.domain_uuid, message.message_uuid, update.status)
    changed = await admin.services.runtime.messages.get(message.domain_uuid, message.message_uuid)
    assert changed is not None
    return model_response(MessageOut.build(changed, base))


async def redeliver_message(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    base, message = await _message(admin)
    await admin.services.runtime.messages.redeliver(message.domain_uuid, message.message_uuid)
    admin.services.runtime.courier.wake()
    changed = await admin.services.runtime.messages.get(message.domain_uuid, message.message_uuid)
    assert changed is not None
    return model_response(MessageOut.build(changed, base), status=202)


async def get_message_audio(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    _, message = await _message(admin)
    inbox = admin.services.spool.inbox(message.domain_uuid, message.call_uuid)
    path = await asyncio.to_thread(_on_disk, message.audio_file, inbox)
    if path is None:
        raise NotFound("this message has no recording on disk")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def _on_disk(audio_file: str | None, inbox: Path) -> Path | None:
    """The recording, only if it lies in its own call's folder of the spool (and still exists)."""
    if not audio_file:
        return None
    path = Path(audio_file).resolve()
    return path if path.is_relative_to(inbox.resolve()) and path.is_file() else None


OPERATIONS = [
    Operation(
        "GET",
        "/domains/{domain}/messages",
        list_messages,
        "Messages taken, newest first",
        "messages",
        query=MessageFilters,
        response=Page[MessageOut],
    ),
    Operation(
        "GET", "/domains/{domain}/messages/{message_uuid}", get_message, "One message", "messages", response=MessageOut
    ),
    Operation(
        "PATCH",
        "/domains/{domain}/messages/{message_uuid}",
        update_message,
        "Mark a message handled (or new again)",
        "messages",
        body=MessageUpdate,
        response=MessageOut,
        errors=(400, 401, 404, 413),
    ),
    Operation(
        "POST",
        "/domains/{domain}/messages/{message_uuid}/redeliver",
        redeliver_message,
        "Retry the deliveries that gave up",
        "messages",
        response=MessageOut,
        status=202,
    ),
    Operation(
        "GET",
        "/domains/{domain}/messages/{message_uuid}/audio",
        get_message_audio,
        "The caller's recorded message (WAV)",
        "messages",
        binary="audio/wav",
    ),
]
