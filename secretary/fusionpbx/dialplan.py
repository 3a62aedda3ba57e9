"""`voiceai dialplan install|uninstall`: the `v_dialplans` row that routes an extension to the secretary.

FusionPBX's XML handler serves each context's dialplan from `v_dialplans.dialplan_xml` (ordered by
`dialplan_order`) and caches it under `dialplan:<context>`; FusionPBX's own apps (ring groups, queues) write
rows without `v_dialplan_details`, and so do we. The row is recognised by our fixed `app_uuid`, and its
`dialplan_uuid` is derived from the domain and extension, so installing again updates it in place.

Both modes run the Lua script (`secretary_ai.lua`, which answers and talks to ivr_service over mod_curl). In
realtime mode the channel also says `voiceai_mode=realtime` and where the bridge is: the script starts
`mod_audio_stream` towards the bridge itself, keeps the call's media flowing while the bridge has the call,
and goes on turn-based when the bridge does not claim the call (down, refusing it) or goes away mid-call. (A
dialplan can't do that: `uuid_audio_stream` answers `+OK` before it has connected, and a parked call can't
notice the stream failing.)
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Literal
from uuid import UUID

from lxml import etree

from secretary.access.stream_tokens import token_for_dialplan
from secretary.db.database import Database
from secretary.errors import BadInput
from secretary.settings import Settings

APP_UUID = UUID("5ec2e7a1-a1d0-4c2e-9b6f-7f3c0a1e5e01")  # "voiceai secretary", ours, fixed forever
DIALPLAN_NAME = "voiceai_secretary"
FUSIONPBX_APP = "ai_secretary"  # the FusionPBX app's folder, and the category of its default settings
Mode = Literal["turn", "realtime"]
_EXTENSION = re.compile(r"^[0-9*#+]{1,20}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")
_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")


@dataclass(frozen=True)
class DialplanRequest:
    domain_uuid: UUID
    domain_name: str
    extension: str
    mode: Mode
    fallback: str
    ivr_url: str = "http://127.0.0.1:8086"
    bridge_url: str = "ws://127.0.0.1:8085"
    bridge_token: str | None = None
    sample_rate: int = 16000
    playback_module: bool = False  # STREAM_PLAYBACK=true: for playback builds only (playback_mode: module)
    order: int = 101
    spool_dir: str | None = None  # the spool as FreeSWITCH sees it; the Lua script refuses files outside it
    timeout_s: int = 20  # how long the Lua script waits for one reply of the service

    def validate(self) -> None:
        if not _EXTENSION.match(self.extension):
            raise BadInput("the extension must be digits (with *, # or +)", field="extension")
        if not _EXTENSION.match(self.fallback):
            raise BadInput("the fallback must be an extension number", field="fallback")
        if not re.match(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[^\s]*)?$", self.ivr_url):
            raise BadInput("ivr_url must be an http(s) URL without blanks", field="ivr_url")
        if not re.match(r"^wss?://[A-Za-z0-9.:\[\]_-]+/?$", self.bridge_url):
            raise BadInput("bridge_url must be ws(s)://host:port", field="bridge_url")
        if self.bridge_token is not None and not _TOKEN.match(self.bridge_token):
            raise BadInput("the bridge token has characters a dialplan can't carry", field="bridge_token")
        if self.sample_rate not in (8000, 16000):
            raise BadInput("sample_rate must be 8000 or 16000", field="sample_rate")
        if not 0 <= self.order <= 999:
            raise BadInput("order must be 0..999", field="order")
        if self.spool_dir is not None and (not _PATH.match(self.spool_dir) or ".." in self.spool_dir):
            raise BadInput("spool_dir must be a plain absolute path", field="spool_dir")
        if not 1 <= self.timeout_s <= 300:
            raise BadInput("timeout_s must be 1..300 seconds", field="timeout_s")


def service_request(
    settings: Settings,
    domain_uuid: UUID,
    domain_name: str,
    extension: str,
    mode: Mode,
    fallback: str,
    playback_module: bool,
    *,
    ivr_url: str | None = None,
    bridge_url: str | None = None,
    sample_rate: int = 16000,
    order: int = 101,
) -> DialplanRequest:
    """The row for this service (the CLI and the admin API alike): its addresses as FreeSWITCH reaches them
    unless given, its spool, and in realtime mode the domain's own bridge token (or the shared one)."""
    token = token_for_dialplan(settings.bridge, domain_uuid).value if mode == "realtime" else None
    spool = settings.spool.freeswitch_dir or settings.spool.dir.resolve()
    return DialplanRequest(
        domain_uuid=domain_uuid,
        domain_name=domain_name,
        extension=extension,
        mode=mode,
        fallback=fallback,
        ivr_url=ivr_url or f"http://{settings.ivr.host}:{settings.ivr.port}",
        bridge_url=bridge_url or f"ws://{settings.bridge.host}:{settings.bridge.port}",
        bridge_token=token,
        sample_rate=sample_rate,
        playback_module=playback_module,
        order=order,
        spool_dir=str(spool),
    )


def dialplan_uuid(domain_uuid: UUID, extension: str) -> UUID:
    return uuid.uuid5(APP_UUID, f"{domain_uuid}/{extension}")


def _action(parent: etree._Element, application: str, data: str = "") -> None:
    etree.SubElement(parent, "action", application=application, data=data)


def build_xml(request: DialplanRequest) -> str:
    """The `<extension>` for this row, built with lxml (so every value is escaped) and validated."""
    request.validate()
    root = etree.Element(
        "extension", name=DIALPLAN_NAME, uuid=str(dialplan_uuid(request.domain_uuid, request.extension))
    )
    root.set("continue", "false")
    condition = etree.SubElement(
        root, "condition", field="destination_number", expression=f"^{re.escape(request.extension)}$"
    )
    _action(condition, "set", f"domain_uuid={request.domain_uuid}")
    _action(condition, "set", f"domain_name={request.domain_name}")
    _action(condition, "set", f"voiceai_fallback={request.fallback}")
    _action(condition, "set", f"voiceai_url={request.ivr_url}")
    _action(condition, "set", f"voiceai_timeout={request.timeout_s}")
    if request.spool_dir:
        _action(condition, "set", f"voiceai_spool_dir={request.spool_dir.rstrip('/')}")
    if request.mode == "realtime":
        _action(condition, "set", "voiceai_mode=realtime")
        _action(condition, "set", f"voiceai_bridge_url={request.bridge_url.rstrip('/')}")
        _action(condition, "set", f"voiceai_sample_rate={request.sample_rate}")
        if request.bridge_token:
            headers = json.dumps({"Authorization": f"Bearer {request.bridge_token}"}, separators=(",", ":"))
            _action(condition, "set", f"STREAM_EXTRA_HEADERS={headers}")
        if request.playback_module:
            _action(condition, "set", "STREAM_PLAYBACK=true")
            _action(condition, "set", f"STREAM_SAMPLE_RATE={request.sample_rate}")
        _action(condition, "set", "STREAM_HEART_BEAT=15")
    _action(condition, "lua", "secretary_ai.lua")
    validate_xml(root)
    return str(etree.tostring(root, pretty_print=True, encoding="unicode"))


def validate_xml(element: etree._Element) -> None:
    schema = etree.RelaxNG(
        etree.fromstring(resources.files("secretary.fusionpbx").joinpath("dialplan.rng").read_bytes())
    )
    if not schema.validate(element):
        raise BadInput(f"generated dialplan XML is invalid: {schema.error_log.last_error}", field="dialplan_xml")


@dataclass(frozen=True)
class DialplanRow:
    """A secretary row as it is in `v_dialplans` now."""

    dialplan_uuid: UUID
    extension: str
    mode: Mode
    enabled: bool
    order: int


@dataclass(frozen=True)
class InstalledDialplan:
    dialplan_uuid: UUID
    created: bool
    destination: bool  # offered in FusionPBX's destination pickers (False: this FusionPBX has no such column)
    label: str  # how the pickers name it
    by_app: bool = False  # in the ai_secretary app's group "AI Secretary" (else FusionPBX's "Dialplan")


class DialplanInstaller:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def install(self, request: DialplanRequest) -> InstalledDialplan:
        """Insert or update the row, offered once in FusionPBX's destination pickers (Inbound Routes /
        Destinations, IVR options, time conditions). FusionPBX's own Dialplan group lists a domain's enabled
        rows flagged `dialplan_destination`; the `ai_secretary` app's group (fusionpbx/app/ai_secretary/
        app_config.php) lists our rows without the flag. So the flag is set only while the app is not installed
        (none of its default settings in FusionPBX), else cleared: never both groups. FusionPBX 4.4 and older
        have no such column, and the row is written without it."""
        xml = build_xml(request)
        row_uuid = dialplan_uuid(request.domain_uuid, request.extension)
        description = f"AI secretary ({request.mode} mode), installed by voiceai"
        async with self._db.connection() as conn, conn.transaction():
            destination = bool(
                await conn.fetchval(
                    """SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                       AND table_name = 'v_dialplans' AND column_name = 'dialplan_destination'"""
                )
            )
            exists = await conn.fetchval("SELECT 1 FROM v_dialplans WHERE dialplan_uuid = $1", row_uuid)
            if exists:
                await conn.execute(
                    """UPDATE v_dialplans SET dialplan_xml = $2, dialplan_order = $3, dialplan_description = $4,
                           dialplan_context = $5, dialplan_enabled = 'true', dialplan_continue = 'false',
                           update_date = now()
                       WHERE dialplan_uuid = $1""",
                    row_uuid,
                    xml,
                    request.order,
                    description,
                    request.domain_name,
                )
            else:
                await conn.execute(
                    """INSERT INTO v_dialplans (domain_uuid, dialplan_uuid, app_uuid, dialplan_context,
                           dialplan_name, dialplan_number, dialplan_continue, dialplan_xml, dialplan_order,
                           dialplan_enabled, dialplan_description, insert_date)
                       VALUES ($1, $2, $3, $4, $5, $6, 'false', $7, $8, 'true', $9, now())""",
                    request.domain_uuid,
                    row_uuid,
                    APP_UUID,
                    request.domain_name,
                    DIALPLAN_NAME,
                    request.extension,
                    xml,
                    request.order,
                    description,
                )
            app = bool(
                await conn.fetchval(
                    "SELECT 1 FROM v_default_settings WHERE default_setting_category = $1 LIMIT 1", FUSIONPBX_APP
                )
            )
            if destination:  # a quoted literal: text in FusionPBX <= 5.4, boolean from 5.5 on
                flag = "'false'" if app else "'true'"
                await conn.execute(
                    f"UPDATE v_dialplans SET dialplan_destination = {flag} WHERE dialplan_uuid = $1", row_uuid
                )
        # as the group shows it: the app's `${destination} ${description}`, FusionPBX's `${dialplan_name} …`
        label = f"{request.extension} {description}" if app else f"{DIALPLAN_NAME} {description}"
        return InstalledDialplan(row_uuid, not exists, destination, label, destination and app)

    async def uninstall(self, domain_uuid: UUID, extension: str) -> bool:
        status = await self._db.execute(
            "DELETE FROM v_dialplans WHERE app_uuid = $1 AND domain_uuid = $2 AND dialplan_number = $3",
            APP_UUID,
            domain_uuid,
            extension,
        )
        return not status.endswith(" 0")

    async def installed(self, domain_uuid: UUID) -> list[DialplanRow]:
        """The domain's secretary rows (ours by `app_uuid`), by extension; the mode is read from the XML."""
        rows = await self._db.fetch(
            """SELECT dialplan_uuid, dialplan_number, dialplan_xml, dialplan_enabled::text AS enabled,
                      dialplan_order FROM v_dialplans
               WHERE app_uuid = $1 AND domain_uuid = $2 ORDER BY dialplan_number""",
            APP_UUID,
            domain_uuid,
        )
        return [
            DialplanRow(
                dialplan_uuid=r["dialplan_uuid"],
                extension=r["dialplan_number"],
                mode="realtime" if "voiceai_mode=realtime" in (r["dialplan_xml"] or "") else "turn",
                enabled=r["enabled"] == "true",
                order=int(r["dialplan_order"] or 0),
            )
            for r in rows
        ]

    async def conflicts(self, domain_uuid: UUID, extension: str) -> list[str]:
        """Other enabled things in the domain that already answer this number (warnings for the admin)."""
        rows = await self._db.fetch(
            """SELECT 'dialplan ' || coalesce(dialplan_name, '?') FROM v_dialplans
               WHERE domain_uuid = $1 AND dialplan_number = $2 AND app_uuid IS DISTINCT FROM $3
                 AND dialplan_enabled::text = 'true'
               UNION ALL
               SELECT 'extension ' || extension FROM v_extensions
               WHERE domain_uuid = $1 AND (extension = $2 OR number_alias = $2) AND enabled::text = 'true'""",
            domain_uuid,
            extension,
            APP_UUID,
        )
        return [r[0] for r in rows]
