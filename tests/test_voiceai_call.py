"""`voiceai call` as a user runs it: a subprocess that starts its own in-process service (nothing listens at
--url), speaks the sentences with Piper through the real Lua script, and prints and saves the replies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from secretary.speech.audio import parse_wav
from tests.conftest import EXAMPLE_SECRETARIES, ROOT


def test_voiceai_call_speaks_through_the_lua_script(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOICEAI_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env |= {
        "VOICEAI_CONFIG": str(tmp_path / "absent.yaml"),
        "VOICEAI_SECRETARIES_FILE": str(EXAMPLE_SECRETARIES),
        "VOICEAI_DATA_DIR": str(tmp_path / "data"),
        "VOICEAI_SPOOL__DIR": str(tmp_path / "spool"),
    }
    out = tmp_path / "calls"
    command = [sys.executable, "-m", "voiceai", "call", "--url", nobody, "--out", str(out)]
    command += ["--say", "What are your opening hours?", "--say", "Goodbye."]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    heard = [line for line in lines if line.startswith("heard:")]
    said = [line for line in lines if line.startswith("secretary:")]
    assert len(heard) == 2 and "opening hours" in heard[0].lower() and "bye" in heard[1].lower()
    assert "Monday to Friday" in said[1] and said[1].endswith("[continue]")
    assert said[2].endswith("[hangup]")
    assert "outcome:    the secretary hung up" in lines
    (folder,) = out.iterdir()
    replies = sorted(folder.glob("*.wav"))
    assert [p.name for p in replies] == ["01-secretary.wav", "02-secretary.wav", "03-secretary.wav"]
    assert all(parse_wav(p.read_bytes()).duration_s > 1.0 for p in replies)
    record = tmp_path / "data" / "calls" / "d0000000-0001-4000-8000-000000000001" / f"{folder.name}.json"
    assert record.is_file()  # the in-process service saved the call
