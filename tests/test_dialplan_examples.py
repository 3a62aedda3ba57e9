"""The XML in dialplan/ is what `voiceai dialplan show` prints for the demo tenant, and every channel
variable an entry sets is one the Lua script (or mod_audio_stream) reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent


def show(mode: str) -> str:
    env = os.environ | {
        "VOICEAI_SPOOL__FREESWITCH_DIR": "/var/lib/freeswitch/recordings/voiceai",
        "VOICEAI_CONFIG": str(ROOT / "config" / "voice-ai.yaml"),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voiceai",
            "dialplan",
            "show",
            "--domain",
            "acme.example.com",
            "--extension",
            "5000",
            "--mode",
            mode,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("mode", ["turn", "realtime"])
def test_examples_are_what_the_builder_makes(mode: str) -> None:
    assert show(mode) == (ROOT / "dialplan" / f"secretary-{mode}.xml").read_text()


@pytest.mark.parametrize("mode", ["turn", "realtime"])
def test_every_variable_the_entry_sets_is_read_by_the_script(mode: str) -> None:
    """The `voiceai_` and domain variables by the Lua script (the `STREAM_` ones by mod_audio_stream)."""
    scripts = [ROOT / "lua" / "secretary_ai.lua", ROOT / "lua" / "voiceai" / "realtime.lua"]
    read = {name for path in scripts for name in re.findall(r'channel_var\("([a-z_]+)"\)', path.read_text())}
    root = etree.fromstring((ROOT / "dialplan" / f"secretary-{mode}.xml").read_bytes())
    names = {(a.get("data") or "").split("=", 1)[0] for a in root.iter("action") if a.get("application") == "set"}
    names = {name for name in names if not name.startswith("STREAM_")}
    assert names and names <= read, names - read
    assert [a.get("application") for a in root.iter("action")][-1] == "lua"
