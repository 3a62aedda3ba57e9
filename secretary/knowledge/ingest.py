"""Where documents are taken in, away from calls: extraction in a bounded pool of spawned processes, passage
embedding on one thread of its own, both behind the per-domain `DomainQueue`.

The engine pool (`CpuPool`) that calls' speech engines and question embeddings run in never parses or embeds
a document: a 238 KiB PDF that inflates to 60 MiB held both of its threads for half a minute, and every
tenant's turns waited. Processes, not threads, because a parser can only be stopped from outside: each job
has a CPU-time and a memory limit (set in the worker, see `ingest_worker`) and a wall-clock limit past which
pebble kills the worker and starts another. 'spawn', not fork: the service holds threads and ONNX sessions
that a forked child must not inherit; a spawned worker imports pypdf and lxml only, once (about a second).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from uuid import UUID

from pebble import ProcessExpired, ProcessPool

from secretary.errors import DependencyUnavailable
from secretary.knowledge import ingest_worker
from secretary.knowledge.domain_queue import DomainQueue
from secretary.knowledge.ingest_worker import ExtractionLimit, JobLimits, Prepared
from secretary.settings import KnowledgeSettings
from secretary.speech.cpu_pool import CpuPool


class Ingest:
    def __init__(self, settings: KnowledgeSettings) -> None:
        ingest = settings.ingest
        self.queue = DomainQueue(ingest.workers, ingest.max_queued_per_domain)
        # MiniLM embeds a document's passages here, one batch at a time, on the model the calls share (loaded
        # once); BLAS is one thread (see `MiniLm`), so this thread uses at most one core.
        self.embedding = CpuPool(1)
        self._limits = JobLimits(
            cpu_s=ingest.cpu_limit_s,
            memory_bytes=ingest.memory_limit_mb * 2**20,
            max_text_chars=ingest.max_text_chars,
            chunk_chars=settings.chunk_chars,
            overlap_chars=settings.chunk_overlap_chars,
        )
        self._timeout_s = ingest.timeout_s
        spawn = multiprocessing.get_context("spawn")
        # The workers start with the first job.
        self._processes = ProcessPool(max_workers=ingest.workers, initializer=ingest_worker.start_worker, context=spawn)

    async def prepare(self, domain: UUID, filename: str, content: bytes, content_type: str) -> Prepared:
        """An upload's text and passages, when the domain's turn comes. Raises `BadInput` for a bad document
        and `ExtractionLimit` for one that took more than a job may."""
        async with self.queue.turn(domain):
            return await self._run(ingest_worker.prepare, filename, content, content_type, self._limits)

    async def prepare_stored(self, domain: UUID, content_type: str, text: str) -> Prepared:
        """A kept document's passages again (re-indexing), in the same processes: cutting megabytes of text
        is CPU work too."""
        async with self.queue.turn(domain):
            return await self._run(ingest_worker.prepare_stored, content_type, text, self._limits)

    async def _run(self, job: Callable[..., Prepared], *args: object) -> Prepared:
        """Cancelling the wait (a client gone) cancels the job, and pebble kills the worker running it."""
        try:
            result = await asyncio.wrap_future(self._processes.schedule(job, args, timeout=self._timeout_s))
        except TimeoutError:
            raise ExtractionLimit(f"extraction exceeded its time limit ({self._timeout_s:g} s)") from None
        except ProcessExpired as exc:
            raise ExtractionLimit(f"the extraction process died ({_exit(exc.exitcode)})") from None
        except (BrokenProcessPool, RuntimeError) as exc:  # pebble's pool whose workers can't even start
            raise DependencyUnavailable("document ingest", f"its worker processes don't start ({exc})") from None
        return result

    async def close(self) -> None:
        self.embedding.close()
        self._processes.stop()  # type: ignore[no-untyped-call]  # pebble leaves it unannotated
        await asyncio.to_thread(self._processes.join)


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return signal.Signals(-code).name
    return f"exit code {code}"
