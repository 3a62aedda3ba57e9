"""`voiceai call --realtime`: a newcomer talks to the bridge without FreeSWITCH (the bridge starts in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from secretary.speech.audio import parse_wav
from tests.support.bridge import PATIENT_FILLER
from voiceai.cli import main

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def keep_logging_config() -> object:
    """The CLI configures structlog to print to the stderr of its moment (pytest's capture, closed after this
    test): put back the configuration the other tests log through."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_call_realtime_starts_a_bridge_and_prints_the_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICEAI_SPOOL__DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("VOICEAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VOICEAI_FALLBACK__LATE_AFTER_S", str(PATIENT_FILLER["late_after_s"]))
    out = tmp_path / "calls"
    code = main(["call", "--realtime", "--say", "Please put me through to billing.", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "caller:    Please put me through to billing." in printed
    assert "transferred to 1003 in acme.example.com" in printed
    (heard,) = out.glob("*-heard.wav")
    assert parse_wav(heard.read_bytes()).duration_s > 3
    assert "billing" in printed.split("caller:")[1].lower()
