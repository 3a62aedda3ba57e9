"""Flushing FusionPBX's cached dialplan of one context after its secretary row changed.

FusionPBX's XML handler caches each context's dialplan under `dialplan:<context>`: with `cache.method = file`
(its default) as the file `<cache.location>/dialplan.<context>`, with `memcache` in mod_memcache, deleted over
the event socket (`memcache delete dialplan:<context>`). Only that one entry of that one context is removed,
and only for a context that is a plain domain name: a name with a slash or `..` names no cache file.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from secretary.errors import BadInput, DependencyUnavailable
from secretary.settings import FusionPbxSettings

if TYPE_CHECKING:
    from freeswitch.esl import EslClient

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_CONTEXT = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class CacheFlush:
    flushed: bool
    detail: str  # what was done, or why nothing could be
    flush_instructions: str | None  # what the admin must still do (None: nothing)


def checked_context(context: str) -> str:
    """A dialplan context as FusionPBX names a domain's: dot-separated labels, nothing that walks a path."""
    if len(context) > 253 or not _CONTEXT.match(context):
        raise BadInput("the dialplan context must be a plain domain name", field="context", code="invalid_field")
    return context


def cache_file(cache_dir: Path, context: str) -> Path:
    return cache_dir / f"dialplan.{checked_context(context)}"


def flush_instructions(context: str, cache_dir: Path) -> str:
    return (
        f"Clear FusionPBX's dialplan cache for {context} so FreeSWITCH reads the change:\n"
        f"  cache.method = file (FusionPBX's default, /etc/fusionpbx/config.conf): "
        f"rm -f {cache_file(cache_dir, context)}\n"
        f"  cache.method = memcache: fs_cli -x 'memcache delete dialplan:{context}'\n"
        f"  or in the web UI: Status > SIP Status > Flush Cache (Flush Memcache in older versions)"
    )


async def flush_dialplan_cache(settings: FusionPbxSettings, context: str, esl: EslClient | None) -> CacheFlush:
    """Removes the context's cached dialplan the way `settings` says FusionPBX caches it; when this process
    can't, says so and what the admin must run."""
    checked_context(context)
    if settings.cache_method == "memcache":
        return await _flush_memcache(context, esl, settings.cache_dir)
    return await asyncio.to_thread(_flush_file, settings.cache_dir, context)


def _flush_file(cache_dir: Path, context: str) -> CacheFlush:
    path = cache_file(cache_dir, context)
    if not cache_dir.is_dir():
        detail = f"{cache_dir} is not on this machine (FusionPBX on another host, or fusionpbx.cache_dir unset)"
        return CacheFlush(False, detail, flush_instructions(context, cache_dir))
    try:
        path.unlink()
    except FileNotFoundError:
        return CacheFlush(True, f"nothing was cached for {context} ({path})", None)
    except OSError as exc:
        return CacheFlush(False, f"could not delete {path}: {exc.strerror}", flush_instructions(context, cache_dir))
    return CacheFlush(True, f"deleted {path}", None)


async def _flush_memcache(context: str, esl: EslClient | None, cache_dir: Path) -> CacheFlush:
    if esl is None:
        detail = "memcache is flushed over ESL, and this process has no ESL connection (the bridge runs elsewhere)"
        return CacheFlush(False, detail, flush_instructions(context, cache_dir))
    try:
        reply = await esl.api(f"memcache delete dialplan:{context}")
    except DependencyUnavailable as exc:
        return CacheFlush(False, f"ESL: {exc.message}", flush_instructions(context, cache_dir))
    text = reply.reply_text
    if reply.ok or "NOT FOUND" in text.upper().replace("NOTFOUND", "NOT FOUND"):
        return CacheFlush(True, f"memcache delete dialplan:{context}: {text or '+OK'}", None)
    return CacheFlush(False, f"memcache delete dialplan:{context}: {text}", flush_instructions(context, cache_dir))
