"""What is happening now in a domain: its calls in progress (from the live call-state store, never another
domain's) and the health of its own provider entries (benched or not, by the keys its adapters have)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from ivr_service.admin.context import AdminRequest, model_response
from ivr_service.admin.registry import Operation
from secretary.errors import NoSecretary
from secretary.tenants.pg_store import PROVIDER_KINDS


class LiveCall(BaseModel):
    call_uuid: UUID
    caller_id_number: str
    caller_id_name: str
    destination_number: str
    started_at: datetime
    turns: int  # turns so far
    transport: str  # turn (mod_curl), realtime (mod_audio_stream), browser (a console test call)
    phase: str


class LiveCalls(BaseModel):
    items: list[LiveCall]
    has_more: bool


class ProviderState(BaseModel):
    kind: str
    position: int  # 1 is tried first
    name: str
    model: str | None
    benched: bool
    reason: str | None


class ProvidersHealth(BaseModel):
    items: list[ProviderState]


async def list_live_calls(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    limit = admin.settings.max_page_size
    states = await admin.services.runtime.call_states.active(domain.domain_uuid, limit + 1)
    items = [
        LiveCall(
            call_uuid=s.call_uuid,
            caller_id_number=s.caller_id_number,
            caller_id_name=s.caller_id_name,
            destination_number=s.destination_number,
            started_at=s.started_at,
            turns=len(s.turns),
            transport=s.transport,
            phase=s.phase.value,
        )
        for s in states[:limit]
    ]
    return model_response(LiveCalls(items=items, has_more=len(states) > limit))


async def get_providers_health(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    config = await admin.services.secretaries.admin_get_resolved(domain.domain_uuid)
    if config is None:
        raise NoSecretary(f"domain {domain.domain_name} has no AI secretary")
    providers = admin.services.runtime.providers
    items = []
    for kind in PROVIDER_KINDS:
        for position, spec in enumerate(getattr(config.providers, kind), start=1):
            reason = providers.benched(kind, spec, config)
            items.append(
                ProviderState(
                    kind=kind,
                    position=position,
                    name=spec.name,
                    model=spec.model,
                    benched=reason is not None,
                    reason=reason,
                )
            )
    return model_response(ProvidersHealth(items=items))


OPERATIONS = [
    Operation(
        "GET",
        "/domains/{domain}/live-calls",
        list_live_calls,
        "The domain's calls in progress now (caller, start, turns so far, transport)",
        "calls",
        response=LiveCalls,
    ),
    Operation(
        "GET",
        "/domains/{domain}/providers/health",
        get_providers_health,
        "Each provider entry of the domain's chains: benched (and why) or serving",
        "secretaries",
        response=ProvidersHealth,
    ),
]
