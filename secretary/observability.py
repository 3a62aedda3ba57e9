"""Structured JSON logs (structlog, with call and domain ids bound per request) and Prometheus metrics.

`Metrics` owns its registry instead of using prometheus-client's global one, so each service instance
(and each test) has its own counters.
"""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


# Libraries that log routine events (every utterance, every connection) at INFO.
_CHATTY_LIBRARIES = ("faster_whisper", "websockets", "chromadb", "httpx", "aiosmtplib")


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """One format for everything: our structlog events and the libraries' stdlib logging records alike,
    so a JSON log stays one JSON object per line."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level, stamp],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "voiceai_http_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.errors = Counter("voiceai_errors", "Errors returned, by code", ["code"], registry=self.registry)
        self.turns = Counter(
            "voiceai_turns",
            "Conversation turns by transport and action",
            ["transport", "action"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "voiceai_stage_seconds", "Time per turn stage", ["stage"], buckets=STAGE_BUCKETS, registry=self.registry
        )
        self.calls_started = Counter("voiceai_calls_started", "Calls started", ["transport"], registry=self.registry)
        self.calls_ended = Counter(
            "voiceai_calls_ended", "Calls ended by outcome", ["transport", "outcome"], registry=self.registry
        )
        self.active_calls = Gauge("voiceai_active_calls", "Calls in progress", ["transport"], registry=self.registry)
        self.fallbacks = Counter(
            "voiceai_provider_fallbacks",
            "Providers that failed and were skipped",
            ["kind", "provider"],
            registry=self.registry,
        )
        self.tts_cache = Counter("voiceai_tts_cache", "TTS cache lookups", ["result"], registry=self.registry)
        self.dropped_frames = Counter(
            "voiceai_dropped_frames", "Inbound audio frames dropped, by reason", ["reason"], registry=self.registry
        )
        self.barge_ins = Counter(
            "voiceai_barge_ins",
            "Times a caller interrupted the secretary, by playback mode",
            ["mode"],
            registry=self.registry,
        )
        self.esl_failures = Counter(
            "voiceai_esl_failures",
            "Call-control commands that could not be sent over ESL",
            ["command"],
            registry=self.registry,
        )
