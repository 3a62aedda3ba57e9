"""A test call from the console in a real headless Chromium with a fake microphone (Piper's voice from a WAV):
the page streams it to a live bridge through an AudioWorklet, the secretary's answer comes back over the
stream, and the transcript and the call's record (mode `test`) show on the page.

With VOICEAI_SCREENSHOTS=<folder> the page is also saved there (docs/console-test-call.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretary.settings import Settings
from secretary.speech.audio import Pcm, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.support.admin_env import ACME
from tests.support.bridge import PATIENT_FILLER, bridge_thread, free_port
from tests.support.console_env import ConsoleService, chromium_or_skip, console_service
from tests.support.speech import Speech
from tests.test_console_browser import shot, sign_in

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install -e .[test])"
)
expect = playwright_api.expect

pytestmark = [pytest.mark.parametrize("writable_fusionpbx_url", ["5.5"], indirect=True), pytest.mark.timeout(180)]
SECRET = "console-test-call-secret-" + "k" * 32
CHROME_RATE = 48000  # Chromium's fake capture reads a 16-bit PCM WAV; at its own rate it resamples nothing


def caller_wav(speech: Speech, sentences: list[str], folder: Path) -> Path:
    """Each sentence once the secretary has answered the one before (Chromium loops the file: a long silence
    ends it)."""
    silence = b"\x00\x00" * CHROME_RATE
    audio = silence * 7
    for text in sentences:
        audio += speech.say(text, CHROME_RATE).data + silence * 10
    path = folder / "caller.wav"
    path.write_bytes(wav_bytes(Pcm(audio + silence * 20, CHROME_RATE)))
    return path


@pytest.fixture
def served(writable_fusionpbx_url: str, models: LocalModels, tmp_path: Path) -> Iterator[ConsoleService]:
    """The console and the bridge over one database, sharing the bridge's settings (its port, token_secret)."""
    bridge = {"host": "127.0.0.1", "port": free_port(), "token_secret": SECRET, "esl": {"enabled": False}}
    bridge_settings = Settings(
        database_url=writable_fusionpbx_url,
        redis_url=None,
        secretaries_file=EXAMPLE_SECRETARIES,
        data_dir=tmp_path / "bridge-data",
        spool={"dir": tmp_path / "bridge-spool"},
        config_cache_s=0,
        fallback=PATIENT_FILLER,
        bridge=bridge,
    )
    with (
        bridge_thread(bridge_settings, models),
        console_service(writable_fusionpbx_url, tmp_path / "console", models, bridge=bridge) as service,
    ):
        yield service


def test_the_admin_calls_the_secretary_from_the_browser(served: ConsoleService, speech: Speech, tmp_path: Path) -> None:
    service = served
    wav = caller_wav(speech, ["Where are you located?", "Please put me through to sales."], tmp_path)
    fake_microphone = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_or_skip(), headless=True, args=fake_microphone)
        context = browser.new_context(viewport={"width": 1200, "height": 900}, permissions=["microphone"])
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, service, "acme")
        page.get_by_role("link", name="Test call").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Test call")
        page.get_by_label("Line").select_option("16000")  # wideband (the bridge's own tests use 8 kHz)
        page.get_by_role("button", name="Call").click()
        status = page.locator(".call-status")
        expect(status).to_have_text("Connected: speak now.")
        transcript = page.locator(".transcript > li")
        expect(transcript.first).to_have_text(re.compile(r"^Secretary\s+Hello, you have reached Acme"))
        expect(transcript.nth(1)).to_have_text(re.compile(r"^You\s+.*located", re.I), timeout=60_000)
        expect(transcript.nth(2)).to_contain_text("Main Street", timeout=30_000)
        # the secretary's voice came back over the stream and was played: 3 s and more (the greeting is longer)
        played = page.locator("[data-test-call]")
        expect(played).to_have_attribute("data-heard-ms", re.compile(r"^([3-9]\d{3}|\d{5,})$"))
        expect(transcript.nth(3)).to_have_text(re.compile(r"^You\s+.*put me through", re.I), timeout=30_000)
        expect(transcript.nth(4)).to_contain_text("Sales")
        actions = page.locator(".call-actions > li")
        expect(actions).to_have_text([re.compile(r"^Action\s+Transfer to 1002: not placed, this is a test call\.")])
        expect(status).to_have_text("Call ended (finished).", timeout=30_000)  # the bridge ended it: transferred
        shot(page, "test-call")
        record = page.get_by_role("link", name="Open the call record")
        href = record.get_attribute("href")
        assert href is not None and href.startswith(f"/console/domains/{ACME}/calls/")
        for _ in range(50):  # the bridge saves the record once the socket has closed
            response = page.goto(f"{service.url}{href}")
            if response is not None and response.status == 200:
                break
            page.wait_for_timeout(200)
        expect(page.get_by_text("test", exact=True)).to_be_visible()  # the record's mode
        expect(page.locator(".transcript")).to_contain_text("Main Street")
        expect(page.locator("main")).to_contain_text("1002")  # where the transfer would have gone
        context.close()
        browser.close()
