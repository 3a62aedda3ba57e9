"""`voiceai doctor`: what an admin runs first when something doesn't work."""

from __future__ import annotations

import time

from freeswitch.esl import EslClient
from ivr_service.spool_access import check_spool_access, own_groups
from secretary.errors import SecretaryError
from secretary.runtime import Runtime
from secretary.settings import Settings


async def _esl(settings: Settings) -> tuple[bool, str]:
    """Connect and authenticate the way the bridge does, with the password it would use."""
    esl = settings.bridge.esl
    where = f"{esl.host}:{esl.port}, password " + (f"from {esl.password_file}" if esl.password_file else "esl.password")
    client = EslClient(esl)
    client.start()
    try:
        if await client.wait_connected(esl.connect_timeout_s + 1):
            return True, f"authenticated at {where}"
        return False, f"no authenticated connection to {where} (FreeSWITCH down, or the password differs)"
    finally:
        await client.close()


def _token_scope(settings: Settings) -> str:
    bridge = settings.bridge
    if bridge.token_secret is not None:
        return "a token per domain, derived from bridge.token_secret"
    if bridge.auth_token is not None:
        return "one bridge.auth_token for every domain (set bridge.token_secret for a token per domain)"
    if bridge.domain_tokens:
        return f"bridge.domain_tokens for {len(bridge.domain_tokens)} domain(s); other domains' streams are refused"
    return "none: the bridge serves any client that reaches its port"


async def run_doctor(settings: Settings) -> int:
    problems = 0

    def report(ok: bool, what: str, detail: str = "") -> None:
        nonlocal problems
        problems += 0 if ok else 1
        print(f"{'ok ' if ok else 'BAD'}  {what}" + (f": {detail}" if detail else ""))

    try:
        runtime = Runtime.create(settings)
    except (SecretaryError, ValueError, OSError) as exc:
        report(False, "configuration", str(exc))
        return 1
    try:
        report(
            True,
            "configuration",
            f"ivr {settings.ivr.host}:{settings.ivr.port}, admin {settings.admin.host}:{settings.admin.port}, "
            f"bridge port {settings.bridge.port}",
        )
        for name, state in (await runtime.health()).items():
            report(state in ("ok", "disabled"), name, state)
        if runtime.database is not None:
            from secretary.db.migrations import available_migrations, current_version, pending_migrations

            try:
                version = await current_version(runtime.database)
                latest = available_migrations()[-1].version
                pending = [m.version for m in await pending_migrations(runtime.database)]
                detail = f"version {version} of {latest}" + (
                    f", missing {pending} (run `voiceai migrate`)" if pending else ""
                )
                report(not pending, "schema", detail)
            except SecretaryError as exc:
                report(False, "schema", str(exc))
        spool = settings.spool.dir
        try:
            spool.mkdir(parents=True, exist_ok=True)
            probe = spool / ".doctor"
            probe.write_bytes(b"ok")
            probe.unlink()
            report(True, "spool", str(spool.resolve()))
            access = check_spool_access(spool, own_groups())
            report(access.ok, "spool shared with FreeSWITCH", access.detail)
        except OSError as exc:
            report(False, "spool", str(exc))
        if settings.bridge.esl.enabled:
            ok, detail = await _esl(settings)
            report(ok, "event socket", detail)
        report(True, "bridge tokens", _token_scope(settings))
        started = time.perf_counter()
        try:
            await runtime.warm_up()
            report(True, "speech models", f"Whisper and Piper loaded in {time.perf_counter() - started:.1f}s")
            pcm = await runtime.providers.local_tts.synthesize("Testing one two three.")
            text = (await runtime.providers.local_stt.transcribe(pcm, "en")).text
            report("test" in text.lower(), "speech round trip", repr(text))
        except Exception as exc:  # any engine failure is what the admin needs to see
            report(False, "speech models", f"{type(exc).__name__}: {exc}")
    finally:
        await runtime.close()
    print("all good" if problems == 0 else f"{problems} problem(s)")
    return 0 if problems == 0 else 1
