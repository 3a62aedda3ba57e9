"""The web console in a real headless Chromium (Debian's package, Playwright): signing in with a key, creating
and editing a secretary, a directory entry from the FusionPBX picker, documents uploaded, asked and re-indexed,
calls filtered by mode, a call's transcript with both recordings played, the inbox, a provider key stored and
deleted, the dialplan and live calls, and a domain admin refused another domain. One browser for the module.

With VOICEAI_SCREENSHOTS=<folder> the pages are also saved there as PNG (docs/ holds the README's)."""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretary.speech.local_engines import LocalModels
from tests.support.admin_env import ACME, GLOBEX
from tests.support.console_env import UMBRELLA, ConsoleService, chromium_or_skip, console_service
from tests.test_console_access import php_token

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install -e .[test])"
)
Browser, Page, expect = playwright_api.Browser, playwright_api.Page, playwright_api.expect

pytestmark = pytest.mark.parametrize("writable_fusionpbx_url", ["5.5"], indirect=True)
SHOTS = os.environ.get("VOICEAI_SCREENSHOTS")


@pytest.fixture(scope="module")
def service(
    writable_fusionpbx_url: str, models: LocalModels, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleService]:
    with console_service(writable_fusionpbx_url, tmp_path_factory.mktemp("console"), models) as served:
        yield served


@pytest.fixture(scope="module")
def browser(service: ConsoleService) -> Iterator[Browser]:
    """After the service: Playwright's sync API holds an event loop in this thread while it runs."""
    executable = chromium_or_skip()
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],  # play() from the test
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=True)


def sign_in(page: Page, service: ConsoleService, key: str) -> None:
    page.goto(f"{service.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.get_by_label("Admin API key").fill(service.keys[key])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_wrong_key_is_refused_and_signing_out_ends_the_session(page: Page, service: ConsoleService) -> None:
    page.goto(f"{service.url}/console/login")
    shot(page, "login")
    page.get_by_label("Admin API key").fill("vai_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Unknown or revoked API key")
    page.goto(f"{service.url}/console/login")  # with the keyboard alone: the key field has the focus
    page.keyboard.type(service.keys["super"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="umbrella.example.org")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    shot(page, "domains")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{service.url}/console/domains/{ACME}")
    expect(page).to_have_url(re.compile(r"/console/login$"))


def test_fusionpbx_opens_the_console_without_a_second_login(page: Page, service: ConsoleService) -> None:
    """The app's page, from another site: its PHP mints the token, its form posts it, the console opens."""
    if shutil.which("php") is None:
        pytest.skip("needs Debian's php-cli (apt-get install php-cli)")
    token = php_token(str(UMBRELLA), "carol@umbrella", "domain", 60)
    page.set_content(
        f'<form method="post" action="{service.url}/console/fusionpbx"><input type="hidden" name="token" '
        f'value="{token}"></form><script>document.forms[0].submit()</script>'
    )
    expect(page).to_have_url(f"{service.url}/console/domains/{UMBRELLA}")
    expect(page.locator(".who")).to_have_text("carol@umbrella")
    response = page.goto(f"{service.url}/console/domains/{ACME}")
    assert response is not None and response.status == 404


def test_superadmin_creates_then_edits_a_secretary(page: Page, service: ConsoleService) -> None:
    sign_in(page, service, "super")
    page.get_by_role("link", name="umbrella.example.org").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create a secretary for umbrella.example.org")
    page.get_by_label("Name", exact=True).fill("Robin")
    page.get_by_label("Company").fill("Umbrella Insurance")
    page.get_by_label("Greeting").fill("Umbrella Insurance, Robin speaking.")
    page.get_by_label("Fallback destination").fill("999")  # no such number in umbrella's FusionPBX
    page.get_by_label("The secretary knows opening hours").check()
    page.get_by_label("Time zone").fill("Europe/Lisbon")
    page.get_by_label("Mon", exact=True).fill("09:00-12:30, 14:00-18:00")
    page.get_by_role("button", name="Create the secretary").click()
    expect(page.get_by_role("alert")).to_contain_text("fallback_destination: 999 is no enabled extension")
    expect(page.get_by_label("Company")).to_have_value("Umbrella Insurance")  # what was typed is kept
    page.get_by_label("Fallback destination").fill("201")
    page.get_by_role("button", name="Create the secretary").click()
    expect(page.get_by_role("status")).to_have_text("The secretary is saved.")
    expect(page.get_by_label("Mon", exact=True)).to_have_value("09:00-12:30, 14:00-18:00")
    shot(page, "secretary")

    page.get_by_label("Persona and instructions").fill("Calm and brief; never promise a claim payout.")
    page.get_by_label("Playback mode (realtime calls)").select_option("module")
    page.get_by_label("Tue", exact=True).fill("10:00-16:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("The secretary is saved.")
    expect(page.get_by_label("Persona and instructions")).to_have_value("Calm and brief; never promise a claim payout.")
    expect(page.get_by_label("Playback mode (realtime calls)")).to_have_value("module")
    expect(page.get_by_label("Tue", exact=True)).to_have_value("10:00-16:00")
    expect(page.get_by_label("Greeting")).to_have_value("Umbrella Insurance, Robin speaking.")

    chains = page.get_by_label(re.compile("Provider chains per kind"))
    chains.fill('{"stt": [{"name": "whisper"}], "tts": [{"name": "piper"}], "brain": []}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("providers.brain")  # a chain needs an engine
    expect(chains).to_have_value('{"stt": [{"name": "whisper"}], "tts": [{"name": "piper"}], "brain": []}')
    chains.fill('{"stt": [{"name": "whisper"}], "brain": [{"name": "front_desk"}], "tts": [{"name": "piper"}]}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("The secretary is saved.")
    expect(page.locator(".chains")).to_contain_text("brain: front_desk")

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text("The secretary is disabled.")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status")).to_have_text("The secretary is enabled.")

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, nothing wider than the screen
    for tail in ("", "/directory", "/calls"):
        page.goto(f"{service.url}/console/domains/{UMBRELLA}{tail}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "phone")


def test_a_domain_admin_adds_a_directory_entry_from_the_picker(page: Page, service: ConsoleService) -> None:
    sign_in(page, service, "acme")
    page.get_by_role("link", name="Directory").click()
    picker = page.get_by_label("FusionPBX destination")
    expect(picker.locator("optgroup[label='Call center queues'] option")).to_have_text(["3000 — Support"])
    picker.select_option("1004")  # already in acme's directory: refused, naming it
    page.get_by_role("button", name="Add to the directory").click()
    expect(page.get_by_role("alert")).to_have_text("extension 1004 is already in the directory")
    picker.select_option("1001")
    expect(page.get_by_label("Name callers say")).to_have_value("Front Desk")  # filled from FusionPBX
    page.get_by_label("Other names (comma-separated)").fill("reception, the lobby")
    page.get_by_label("Description").fill("Visitors and deliveries")
    page.get_by_role("button", name="Add to the directory").click()
    expect(page.get_by_role("status")).to_have_text("Front Desk is added.")
    row = page.get_by_role("row", name=re.compile("Front Desk"))
    expect(row).to_contain_text("reception, the lobby")
    expect(row).to_contain_text("1001")
    shot(page, "directory")


def test_documents_are_uploaded_together_and_asked(page: Page, service: ConsoleService, tmp_path: Path) -> None:
    parking = tmp_path / "parking.md"
    parking.write_text(
        "# Parking\n\nVisitors park in the north garage on level two. The garage gate opens with the code "
        "reception gives you.\n\n# Deliveries\n\nCouriers deliver parcels at the loading dock behind building C.\n"
    )
    lunch = tmp_path / "canteen.txt"
    lunch.write_text("The staff canteen serves lunch from noon until half past two on weekdays.\n")
    sign_in(page, service, "acme")
    page.get_by_role("link", name="Knowledge").click()
    page.get_by_label(re.compile("Text, Markdown, HTML or PDF files")).set_input_files([str(parking), str(lunch)])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("row", name=re.compile("parking.md"))).to_contain_text("indexed")
    expect(page.get_by_role("row", name=re.compile("canteen.txt"))).to_contain_text("indexed")

    page.get_by_label("Question").fill("Where do visitors park?")
    page.get_by_role("button", name="Ask").click()
    answer = page.get_by_role("status")
    expect(answer).to_contain_text("The secretary would say:")
    expect(answer).to_contain_text("north garage")
    expect(answer.locator("cite").first).to_contain_text("parking.md")
    shot(page, "knowledge")

    page.get_by_role("row", name=re.compile("parking.md")).get_by_role("button", name="Re-index").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Re-indexed: [1-9]\d* passages\."))
    expect(page.get_by_role("row", name=re.compile("parking.md"))).to_contain_text("indexed")

    page.get_by_role("row", name=re.compile("canteen.txt")).get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("The document is deleted.")
    expect(page.get_by_role("row", name=re.compile("canteen.txt"))).to_have_count(0)


def test_a_call_shows_its_transcript_timings_and_recording(page: Page, service: ConsoleService) -> None:
    sign_in(page, service, "acme")
    page.get_by_role("link", name="Calls").click()
    page.get_by_label("Caller").fill("0199")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name=re.compile("Dana Ortiz"))).to_have_count(2)  # a turn and a realtime call
    page.get_by_label("Mode").select_option("turn")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_label("Mode")).to_have_value("turn")  # the form keeps the filter
    expect(page.get_by_role("row", name=re.compile("Dana Ortiz"))).to_have_count(1)
    shot(page, "calls")
    page.get_by_role("row", name=re.compile("Dana Ortiz")).get_by_role("link").click()
    expect(page.locator(".transcript")).to_contain_text("when are you open on saturday")
    expect(page.locator(".cut")).to_contain_text("We are open on Saturday from ten to two,")
    expect(page.locator(".timings")).to_contain_text("STT 310 ms")
    audio = page.get_by_label("Caller, turn 1")
    duration = audio.evaluate(
        "a => new Promise((ok, fail) => { a.onloadedmetadata = () => ok(a.duration); a.onerror = fail; a.load(); })"
    )
    assert duration == pytest.approx(1.0, abs=0.05)  # 8000 samples at 8 kHz, served through the session
    reply = page.get_by_label("Secretary, turn 1")
    played = reply.evaluate(
        """a => a.play().then(() => new Promise(ok => {
               const start = a.currentTime;
               const tick = () => a.currentTime > start ? ok([a.duration, a.currentTime]) : setTimeout(tick, 50);
               tick();
           }))"""
    )
    assert played[0] == pytest.approx(2.0, abs=0.05) and played[1] > 0  # it plays: time advances
    shot(page, "call")


def test_the_inbox_redelivers_a_message_and_a_provider_key_is_stored_then_deleted(
    page: Page, service: ConsoleService
) -> None:
    sign_in(page, service, "acme")
    page.get_by_role("link", name="Messages").click()
    message = page.locator(".messages > li", has_text="invoice from March")
    expect(message).to_contain_text("email to billing@acme.example.com: failed after 5 attempts (550 mailbox")
    message.get_by_role("button", name="Redeliver").click()
    expect(page.get_by_role("status")).to_have_text("Delivery is retried.")
    expect(message).to_contain_text("email to billing@acme.example.com: pending")
    shot(page, "messages")
    message.get_by_role("button", name="Mark handled").click()
    expect(page.get_by_role("status")).to_have_text("The message is marked handled.")
    page.get_by_label("Show").select_option("new")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".messages > li", has_text="invoice from March")).to_have_count(0)

    page.get_by_role("link", name="Credentials").click()
    page.get_by_label("Name", exact=True).fill("openai")
    page.get_by_label("Secret").fill("sk-browser-test-key-7890")
    page.get_by_label("Description").fill("LLM and TTS")
    page.get_by_role("button", name="Store").click()
    expect(page.get_by_role("status")).to_have_text("openai is stored.")
    row = page.get_by_role("row", name=re.compile("openai"))
    expect(row).to_contain_text("7890")  # the hint only
    assert "sk-browser-test-key" not in page.content()
    shot(page, "credentials")
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("openai is deleted.")
    expect(page.get_by_role("row", name=re.compile("openai"))).to_have_count(0)
    expect(page.get_by_role("row", name=re.compile("None stored"))).to_be_visible()
    page.get_by_role("link", name="Health").click()
    expect(page.get_by_role("row", name=re.compile("postgresql"))).to_contain_text("ok")
    shot(page, "health")


def _v1(service: ConsoleService, path: str, body: dict[str, str]) -> None:
    """FreeSWITCH's side of a call: the Lua script's requests to the v1 listener."""
    request = urllib.request.Request(
        f"{service.v1_url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_the_dialplan_is_installed_from_the_page_and_a_call_in_progress_is_live(
    page: Page, service: ConsoleService
) -> None:
    cached = service.fusionpbx_cache / "dialplan.acme.example.com"
    cached.write_text("<stale/>")
    sign_in(page, service, "acme")
    expect(page.locator(".chains")).to_contain_text("serving")  # each provider's health beside its chain
    page.get_by_role("link", name="Dialplan").click()
    expect(page.get_by_role("row", name=re.compile("Not installed"))).to_be_visible()
    page.get_by_label("Extension", exact=True).fill("5123")
    page.get_by_label("Mode").select_option("turn")
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_role("heading", name="Extension 5123 is installed (turn mode)")).to_be_visible()
    expect(page.locator(".result")).to_contain_text("FusionPBX cache: flushed, deleted")
    expect(page.get_by_role("row", name=re.compile("5123"))).to_contain_text("turn")
    assert not cached.exists()
    shot(page, "dialplan")

    call_uuid, acme = str(uuid.uuid4()), str(ACME)
    _v1(
        service,
        "/api/v1/calls",
        {"domain_uuid": acme, "call_uuid": call_uuid, "caller_id_number": "5550144", "caller_id_name": "Lee Park"},
    )
    try:
        page.get_by_role("link", name="Live", exact=True).click()
        row = page.get_by_role("row", name=re.compile("Lee Park"))
        expect(row).to_contain_text("5550144")
        expect(row).to_contain_text("turn")
        shot(page, "live")
    finally:
        _v1(service, f"/api/v1/calls/{call_uuid}/end", {"domain_uuid": acme})
    page.reload()
    expect(page.get_by_role("row", name=re.compile("No call in progress"))).to_be_visible()

    page.get_by_role("link", name="Dialplan").click()
    page.get_by_role("row", name=re.compile("5123")).get_by_role("button", name="Uninstall").click()
    expect(page.get_by_role("heading", name="Extension 5123 is uninstalled")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Not installed"))).to_be_visible()
    page.get_by_role("link", name="Health").click()
    expect(page.get_by_role("row", name=re.compile("freeswitch esl"))).to_contain_text("not in this process")


def test_a_domain_admin_is_refused_another_domains_pages(page: Page, service: ConsoleService) -> None:
    sign_in(page, service, "acme")
    expect(page.get_by_role("link", name="globex.example.com")).to_have_count(0)
    for tail in ("", "/directory", "/documents", "/calls", "/messages", "/credentials", "/dialplan", "/live"):
        response = page.goto(f"{service.url}/console/domains/{GLOBEX}{tail}")
        assert response is not None and response.status == 404
        expect(page.get_by_role("alert")).to_contain_text("unknown domain")
    response = page.goto(f"{service.url}/console/api/v1/admin/domains/{UMBRELLA}/calls/{service.acme_call}")
    assert response is not None and response.status == 404
