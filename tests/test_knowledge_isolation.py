"""Tenants are walls, for knowledge too: two FusionPBX domains with their own documents (PostgreSQL metadata,
one Chroma collection each). Domain A's caller asking about something only B's documents know hears "I don't
know"; A can't read, change or delete B's documents by naming them. End to end through the v1 service with
real speech: Piper asks, Whisper hears, the knowledge base answers, Piper speaks, Whisper checks the reply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest

from secretary.calls.prompts import prompts_for
from secretary.conversation.conversation import Conversation
from secretary.conversation.front_desk import FrontDesk
from secretary.db.database import Database
from secretary.errors import NotFound
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import parse_wav, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import acme_config, globex_config
from tests.support import databases
from tests.support.live_service import live_ivr_service
from tests.support.speech import Speech

ACME, GLOBEX = UUID(databases.ACME), UUID(databases.GLOBEX)
DOCUMENTS = Path(__file__).parent / "data" / "knowledge"
DONT_KNOW = prompts_for("en").no_information


async def _forget_documents(url: str) -> None:
    database = Database(url)
    try:
        await database.execute(
            "DELETE FROM v_ai_knowledge_documents WHERE domain_uuid = ANY($1::uuid[])", [ACME, GLOBEX]
        )
    finally:
        await database.close()


async def _load_documents(runtime: Runtime) -> None:
    for name in ("acme-customer-guide.md", "acme-safety.txt"):
        await runtime.knowledge.add_document(ACME, name, (DOCUMENTS / name).read_bytes())
    await runtime.knowledge.add_document(
        GLOBEX, "globex-handbook.html", (DOCUMENTS / "globex-handbook.html").read_bytes()
    )


@pytest.fixture
async def two_domains(
    fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels
) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_settings(database_url=fusionpbx_url), models=models)
    try:
        await _load_documents(runtime)
        yield runtime
    finally:
        await runtime.close()
        await _forget_documents(fusionpbx_url)


async def test_a_question_only_the_other_domain_can_answer(two_domains: Runtime) -> None:
    kb = two_domains.knowledge

    async def ask(config: Any, question: str) -> str:  # a new call each time: no "twice misunderstood" transfer
        return (await Conversation(config, FrontDesk(), knowledge=kb).respond(question)).text

    for question in ("When is the monorail tour?", "Can I rent a hovercraft?", "What time is lunch in the cafeteria?"):
        assert (await ask(acme_config(), question)).startswith(DONT_KNOW), question
    assert "every Thursday at three in the afternoon" in await ask(globex_config(), "When is the monorail tour?")
    assert "lunch from noon to two" in await ask(globex_config(), "What time is lunch in the cafeteria?")
    # Globex's FAQ has a "hovercraft" line: the admin's FAQ wins over the documents.
    assert await ask(globex_config(), "Can I rent a hovercraft?") == "Yes, Globex sells hovercraft in three colours."
    assert "ten-year warranty" in await ask(acme_config(), "What's the warranty on an anvil?")
    assert (await ask(globex_config(), "What's the warranty on an anvil?")).startswith(DONT_KNOW)


async def test_search_never_crosses_domains(two_domains: Runtime) -> None:
    kb = two_domains.knowledge
    for question in ("monorail tour Thursday", "hovercraft rental price", "anvil warranty", "rocket skate fuel"):
        assert all(not h.source.startswith("globex") for h in await kb.search(str(ACME), question, limit=20))
        assert all(h.source.startswith("globex") for h in await kb.search(str(GLOBEX), question, limit=20))


async def test_a_domain_cannot_touch_another_domains_documents(two_domains: Runtime) -> None:
    kb = two_domains.knowledge
    (handbook,) = await kb.list_documents(GLOBEX)
    assert await kb.get_document(ACME, handbook.document_uuid) is None
    assert not await kb.delete_document(ACME, handbook.document_uuid)
    with pytest.raises(NotFound):
        await kb.reindex(ACME, handbook.document_uuid)
    assert {d.filename for d in await kb.list_documents(ACME)} == {"acme-customer-guide.md", "acme-safety.txt"}
    assert await kb.get_document(GLOBEX, handbook.document_uuid) == handbook
    hits = await kb.search(str(GLOBEX), "monorail tour")
    assert hits[0].source == "globex-handbook.html: Monorail tour"


async def _turn(session: aiohttp.ClientSession, url: str, domain: str, call: str, wav: bytes) -> dict[str, Any]:
    async with session.post(
        f"{url}/api/v1/calls/{call}/turns",
        params={"domain_name": domain},
        data=wav,
        headers={"Content-Type": "audio/wav"},
    ) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


@pytest.mark.parametrize("fusionpbx_url", ["5.5"], indirect=True)  # speech is slow: one schema is enough here
async def test_spoken_questions_through_the_v1_service(
    fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    settings = make_settings(database_url=fusionpbx_url)
    loader = Runtime.create(settings, models=models)
    try:
        await _load_documents(loader)
    finally:
        await loader.close()
    try:
        with live_ivr_service(settings, models) as (url, _runtime):
            async with aiohttp.ClientSession() as session:
                calls = {}
                for domain in ("acme.example.com", "globex.example.com"):
                    calls[domain] = str(uuid.uuid4())
                    start = {"domain_name": domain, "call_uuid": calls[domain], "caller_id_number": "5551234"}
                    async with session.post(f"{url}/api/v1/calls", json=start) as response:
                        assert response.status == 200, await response.text()

                async def ask(domain: str, question: str) -> tuple[str, str]:
                    wav = wav_bytes(speech.say(question, 8000))
                    body = await _turn(session, url, domain, calls[domain], wav)
                    reply_audio = parse_wav(await asyncio.to_thread(Path(body["say"]["audio_file"]).read_bytes))
                    return body["say"]["text"], (await speech.hear(reply_audio)).lower()

                text, heard = await ask("acme.example.com", "How long is the warranty on an anvil?")
                assert text == "Every anvil carries a ten-year warranty against cracks."
                assert "warranty" in heard and ("ten" in heard or "10" in heard)

                text, heard = await ask("acme.example.com", "When is the monorail tour?")
                assert text.startswith(DONT_KNOW)
                assert "information" in heard

                text, heard = await ask("globex.example.com", "When is the monorail tour?")
                assert "every Thursday at three in the afternoon" in text
                assert "thursday" in heard
    finally:
        await _forget_documents(fusionpbx_url)
