"""`voiceai doctor`: what an admin runs first when something doesn't work."""

from __future__ import annotations

import time

from secretary.errors import SecretaryError
from secretary.runtime import Runtime
from secretary.settings import Settings


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
        except OSError as exc:
            report(False, "spool", str(exc))
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
