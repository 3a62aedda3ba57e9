"""What an ingest process runs: a document's extraction and cutting into passages, under per-job limits.

It runs in a spawned process (see `ingest.py`), so it imports only what extraction needs (pypdf, lxml,
markdown-it), never the speech engines. Each job gets a soft RLIMIT_CPU (the CPU seconds the process has used
plus the job's allowance: the kernel sends SIGXCPU past it, raised here as an exception) and a soft RLIMIT_AS
(the address space now plus the job's allowance: an allocation past it is a `MemoryError`). Both soft limits
are lifted again after the job, so a worker serves the next job whole; the caller's wall-clock timeout kills
a worker stuck in C code that never sees the signal.
"""

from __future__ import annotations

import math
import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from secretary.errors import SecretaryError
from secretary.knowledge.chunking import TextChunk, chunk_sections
from secretary.knowledge.extraction import ExtractedDocument, extract

NICENESS = 10  # the worker yields the cores to calls' speech engines when both want them


class ExtractionLimit(SecretaryError):
    """A document took more than the CPU time, memory, time or text an ingest job may use. `reason` is
    what the documents list shows ("extraction exceeded its CPU time limit (30 s)")."""

    code = "extraction_limit"
    http_status = 422

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JobLimits:
    cpu_s: float
    memory_bytes: int
    max_text_chars: int
    chunk_chars: int
    overlap_chars: int


@dataclass(frozen=True, slots=True)
class Prepared:
    """The text to keep (re-indexing starts from it) and the passages to embed."""

    text: str
    chunks: list[TextChunk]


class _CpuSpent(BaseException):
    """Raised by the SIGXCPU handler; a BaseException, so no `except Exception` in a parser swallows it."""


def start_worker() -> None:
    """The pool's initializer: a lower priority, and SIGXCPU (the CPU limit) raised instead of killing."""
    os.nice(NICENESS)
    signal.signal(signal.SIGXCPU, _cpu_spent)


def _cpu_spent(signum: int, frame: FrameType | None) -> None:
    raise _CpuSpent


def prepare(filename: str, content: bytes, content_type: str, limits: JobLimits) -> Prepared:
    """An upload: extract its text, then cut it. Raises `BadInput` (a bad document) or `ExtractionLimit`."""
    with _limited(limits):
        return _cut(extract(filename, content, content_type), limits)


def prepare_stored(content_type: str, text: str, limits: JobLimits) -> Prepared:
    """A kept document, cut again (re-indexing)."""
    with _limited(limits):
        return _cut(ExtractedDocument.from_stored_text(content_type, text), limits)


def _cut(extracted: ExtractedDocument, limits: JobLimits) -> Prepared:
    text = extracted.stored_text()
    if len(text) > limits.max_text_chars:
        raise ExtractionLimit(f"the document's text is longer than {limits.max_text_chars} characters")
    return Prepared(text, chunk_sections(extracted.sections, limits.chunk_chars, limits.overlap_chars))


@contextmanager
def _limited(limits: JobLimits) -> Iterator[None]:
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    memory_hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_soft = math.ceil(usage.ru_utime + usage.ru_stime + limits.cpu_s)
    memory_soft = _address_space() + limits.memory_bytes
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (_within(cpu_soft, cpu_hard), cpu_hard))
        resource.setrlimit(resource.RLIMIT_AS, (_within(memory_soft, memory_hard), memory_hard))
        yield
    except _CpuSpent:
        raise ExtractionLimit(f"extraction exceeded its CPU time limit ({limits.cpu_s:g} s)") from None
    except MemoryError:
        raise ExtractionLimit(f"extraction exceeded its memory limit ({limits.memory_bytes // 2**20} MiB)") from None
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard, cpu_hard))
        resource.setrlimit(resource.RLIMIT_AS, (memory_hard, memory_hard))


def _within(soft: int, hard: int) -> int:
    return soft if hard == resource.RLIM_INFINITY else min(soft, hard)


def _address_space() -> int:
    """The process's virtual memory size now (Linux: the first field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
