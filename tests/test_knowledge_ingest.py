"""One tenant's upload can't stall the others' calls: documents are extracted in processes of their own, under
CPU-time, memory and wall-clock limits, and their passages embedded on a thread of their own, never in the
engine threads calls use; a per-domain queue keeps one domain's uploads from starving another's.

The decompression bomb is made here: a 22 KiB PDF whose one page inflates to a 6 MB content stream of text
lines, which pypdf needs ~25 s of CPU to read (quadratic in the lines); the limits are shortened for the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import yaml

from secretary.errors import BadInput
from secretary.knowledge.domain_queue import DomainQueue, TooManyDocuments
from secretary.knowledge.ingest import Ingest
from secretary.knowledge.ingest_worker import ExtractionLimit
from secretary.runtime import Runtime
from secretary.settings import KnowledgeSettings, Settings
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from tests.conftest import acme_config, globex_config
from tests.support import databases
from tests.support.pdf import build_pdf
from tests.support.waiting import until

ACME, GLOBEX = UUID(databases.ACME), UUID(databases.GLOBEX)
HOURS = b"Globex opens its hovercraft showroom at nine in the morning, Monday to Saturday."


@pytest.fixture(scope="module")
def bomb() -> bytes:
    pdf = build_pdf([["Anvils and rocket skates " * 2] * 100_000])
    assert len(pdf) < 32 * 1024  # small on the wire; 6 MB once inflated
    return pdf


@asynccontextmanager
async def engines_held(pool: CpuPool) -> AsyncIterator[list[asyncio.Future[bool]]]:
    """Every engine thread of the calls' pool busy with a job of ours until the block ends: whatever
    completes inside the block did not need one."""
    inside = threading.Barrier(pool.workers + 1, timeout=60)
    release = threading.Event()

    def hold() -> bool:
        inside.wait()
        return release.wait(60)

    holders = [asyncio.ensure_future(pool.run(hold)) for _ in range(pool.workers)]
    await asyncio.to_thread(inside.wait)  # all of them are in `hold` now
    try:
        yield holders
    finally:
        release.set()
        assert all(await asyncio.gather(*holders))


@pytest.fixture
async def runtime(
    make_settings: Callable[..., Settings], models: LocalModels, tmp_path: Path
) -> AsyncIterator[Runtime]:
    secretaries = tmp_path / "secretaries.yaml"
    configs = [acme_config().model_dump(mode="json"), globex_config().model_dump(mode="json")]
    secretaries.write_text(yaml.safe_dump({"secretaries": configs}))
    settings = make_settings(
        secretaries_file=secretaries,
        knowledge={"ingest": {"workers": 1, "cpu_limit_s": 2, "max_queued_per_domain": 1}},
    )
    rt = Runtime.create(settings, models=models)
    yield rt
    await rt.close()


async def test_a_decompression_bomb_fails_clearly_while_calls_engines_and_other_domains_go_on(
    runtime: Runtime, bomb: bytes
) -> None:
    knowledge, queue = runtime.knowledge, runtime.knowledge.ingest.queue
    async with engines_held(runtime.pool) as engines:
        upload = asyncio.create_task(knowledge.add_document(ACME, "bomb.pdf", bomb))
        await until(lambda: queue.working == 1)
        # the domain has its one document being added: one more is refused at once, not queued
        with pytest.raises(TooManyDocuments):
            await knowledge.add_document(ACME, "hours.txt", HOURS)
        # another domain's upload waits its turn behind the bomb, then is read, embedded and indexed
        other = asyncio.create_task(knowledge.add_document(GLOBEX, "hours.txt", HOURS))
        async with asyncio.timeout(120):
            with pytest.raises(ExtractionLimit) as refused:
                await upload
            indexed = await other
        # all of that happened while every engine thread that calls use was held by someone else
        assert not any(engine.done() for engine in engines)

    reason = "extraction exceeded its CPU time limit (2 s)"
    assert refused.value.code == "extraction_limit" and refused.value.message.startswith(f"bomb.pdf: {reason}")
    [listed] = await knowledge.list_documents(ACME)
    assert (listed.filename, listed.status, listed.error, listed.chunk_count) == ("bomb.pdf", "failed", reason, 0)
    assert str(listed.document_uuid) in refused.value.message
    assert (indexed.status, indexed.chunk_count) == ("indexed", 1)
    [hit] = await knowledge.search(str(GLOBEX), "When does the showroom open?")
    assert "nine in the morning" in hit.text

    # there is no text to re-index from: the domain's re-index passes it over, re-indexing it alone says why
    assert await knowledge.reindex(ACME) == 0
    with pytest.raises(BadInput) as again:
        await knowledge.reindex(ACME, listed.document_uuid)
    assert again.value.message == f"bomb.pdf: its text was never extracted ({reason}); upload it again"


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"memory_limit_mb": 64, "cpu_limit_s": 120}, "extraction exceeded its memory limit (64 MiB)"),
        # the worker is killed; 5 s, not less: the documents after it wait for a fresh worker to start
        ({"timeout_s": 5, "cpu_limit_s": 120}, "extraction exceeded its time limit (5 s)"),
    ],
)
async def test_an_extraction_past_its_memory_or_time_limit_fails_and_the_next_one_is_read(
    limits: dict[str, float], reason: str, bomb: bytes
) -> None:
    ingest = Ingest(KnowledgeSettings(ingest=limits))
    try:
        with pytest.raises(ExtractionLimit) as refused:
            await ingest.prepare(ACME, "bomb.pdf", bomb, "application/pdf")
        assert refused.value.reason == reason
        prepared = await ingest.prepare(ACME, "hours.txt", HOURS, "text/plain")
        assert prepared.text == HOURS.decode() and len(prepared.chunks) == 1
        with pytest.raises(BadInput, match="not a PDF"):  # a bad document still reads as one, across processes
            await ingest.prepare(ACME, "x.pdf", b"plain words", "application/pdf")
    finally:
        await ingest.close()


async def test_a_document_whose_text_is_too_long_fails_without_reaching_the_embedder() -> None:
    ingest = Ingest(KnowledgeSettings(ingest={"max_text_chars": 40}))
    try:
        with pytest.raises(ExtractionLimit) as refused:
            await ingest.prepare(ACME, "hours.txt", HOURS, "text/plain")
        assert refused.value.reason == "the document's text is longer than 40 characters"
        assert (await ingest.prepare(ACME, "short.txt", b"Open at nine.", "text/plain")).text == "Open at nine."
    finally:
        await ingest.close()


# -- the per-domain queue ---------------------------------------------------------------------------------------


async def test_a_domain_has_at_most_its_share_of_documents_being_added() -> None:
    queue = DomainQueue(slots=1, per_domain=2)
    a, b = uuid4(), uuid4()
    async with queue.admitted(a), queue.admitted(a):
        with pytest.raises(TooManyDocuments, match="already has 2 document"):
            async with queue.admitted(a):
                pass
        async with queue.admitted(b):  # another domain is not affected
            assert (queue.pending(a), queue.pending(b)) == (2, 1)
    assert (queue.pending(a), queue.pending(b)) == (0, 0)
    async with queue.admitted(a), queue.admitted(a):  # the share is free again
        assert queue.pending(a) == 2


async def test_a_freed_slot_goes_to_the_next_domain_in_turn_not_to_the_one_that_queued_most() -> None:
    queue = DomainQueue(slots=1, per_domain=10)
    a, b, c = uuid4(), uuid4(), uuid4()
    order: list[str] = []
    release = asyncio.Event()

    async def job(domain: UUID, name: str) -> None:
        async with queue.turn(domain):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(job(a, "a0"))
    await until(lambda: order == ["a0"])
    waiting = [asyncio.create_task(job(a, f"a{i}")) for i in (1, 2, 3)]
    waiting += [asyncio.create_task(job(b, "b1")), asyncio.create_task(job(c, "c1")), asyncio.create_task(job(b, "b2"))]
    await asyncio.sleep(0)  # every waiter is in line
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["a0", "a1", "b1", "c1", "a2", "b2", "a3"]
    assert queue.working == 0


async def test_a_cancelled_waiter_neither_takes_nor_loses_a_slot() -> None:
    queue = DomainQueue(slots=1, per_domain=10)
    a, b, c = uuid4(), uuid4(), uuid4()
    holding, release = asyncio.Event(), asyncio.Event()
    served: list[UUID] = []

    async def job(domain: UUID) -> None:
        async with queue.turn(domain):
            served.append(domain)
            holding.set()
            await release.wait()

    first = asyncio.create_task(job(a))
    await holding.wait()
    gone, later = asyncio.create_task(job(b)), asyncio.create_task(job(c))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.gather(first, later)
    assert gone.cancelled() and served == [a, c] and queue.working == 0

    # cancelled in the moment between being handed the slot and taking it: the slot is handed on
    release.clear()
    first, gone, later = (asyncio.create_task(job(d)) for d in (a, b, c))
    await until(lambda: queue.working == 1 and len(served) == 3)
    release.set()
    await asyncio.sleep(0)  # `first` leaves and hands the slot to `gone`, which has not run yet
    gone.cancel()
    await asyncio.gather(first, later, return_exceptions=True)
    assert served == [a, c, a, c] and queue.working == 0
