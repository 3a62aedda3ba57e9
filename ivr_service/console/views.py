"""The console's pages. Each one reads and writes through the admin API's operation handlers (`Console.call`),
authorized by `ivr_service.admin.authorize` and scoped by `AdminRequest.domain` like any API request; a form
is turned into the JSON body the operation takes, and its refusal is shown on the page."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from multidict import MultiDictProxy

from ivr_service.admin import OPERATIONS, authorize, route
from ivr_service.admin import calls as calls_api
from ivr_service.admin import credentials as credentials_api
from ivr_service.admin import documents as documents_api
from ivr_service.admin import messages as messages_api
from ivr_service.admin import secretaries as secretaries_api
from ivr_service.admin.context import AdminRequest, AdminServices, Unauthorized
from ivr_service.admin.registry import AdminHandler
from ivr_service.api_models import refuse_unstorable_text
from ivr_service.console import operations_views
from ivr_service.console.sessions import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    LOGIN_PATH,
    LoginTokens,
    Session,
    Sessions,
    set_cookie,
)
from ivr_service.statuses import status_for
from secretary.access.api_keys import KEY_PREFIX, Principal
from secretary.access.console_tokens import ConsoleTokenVerifier, TokenRefused
from secretary.access.stream_tokens import mint_test_call_token
from secretary.calls.models import Outcome, Transport
from secretary.errors import BadInput, NoSecretary, SecretaryError, UnknownDomain
from secretary.settings import BridgeSettings, ConsoleSettings

log = structlog.get_logger(__name__)

PREFIX = "/console"
LOGIN_FORM_S = 1800.0  # how long a sign-in form stays good (its CSRF token): then a reload
STATIC = Path(__file__).parent / "static"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RECORDING_FIELDS = ("max_seconds", "silence_threshold", "silence_seconds", "message_max_seconds", "silent_turns")
TEXT_FIELDS = ("name", "company", "language", "greeting", "farewell", "instructions", "fallback_destination")
SAFE_METHODS = frozenset({"GET", "HEAD"})

View = Callable[[web.Request, "Page"], Awaitable[web.StreamResponse]]


@dataclass
class ConsoleRequest(AdminRequest):
    """An operation called from a page: its body and query come from the form, not the HTTP request."""

    payload: Any = None
    params: dict[str, str] = field(default_factory=dict)

    def query_values(self) -> dict[str, str]:
        return self.params

    async def json(self) -> Any:
        return refuse_unstorable_text(self.payload)


@dataclass
class Page:
    """One page request of a signed-in admin."""

    request: web.Request
    console: Console
    session: Session
    form: MultiDictProxy[Any] | None = None

    async def call(
        self, handler: AdminHandler, *, body: Any = None, query: dict[str, str] | None = None, **path: str
    ) -> Any:
        """The admin API operation `handler`, as this admin, with `path` parameters added to the page's own."""
        operation = self.console.operations[handler.__name__]
        self.request.match_info.update(path)  # the operation reads its parameters where the API has them
        authorize(self.request, self.session.principal, operation)
        admin = ConsoleRequest(
            self.request, self.console.services, self.session.principal, operation, payload=body, params=query or {}
        )
        response = await operation.handler(self.request, admin)
        assert isinstance(response, web.Response) and response.text is not None
        return json.loads(response.text)

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        context |= {"session": self.session, "flash": self.session.take_flash(), "path": self.request.path}
        return aiohttp_jinja2.render_template(template, self.request, context, status=status)

    def back(self, location: str, kind: str = "ok", text: str | None = None) -> web.Response:
        """After a form: say how it went on the next page (POST, redirect, GET)."""
        if text:
            self.session.say(kind, text)
        return web.Response(status=303, headers={"Location": location})


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def domain_url(domain: str, tail: str = "") -> str:
    return f"{PREFIX}/domains/{domain}{tail}"


class Console:
    def __init__(self, services: AdminServices, settings: ConsoleSettings) -> None:
        self.services = services
        self.settings = settings
        self.sessions = Sessions(settings.session_idle_s, settings.max_sessions)
        self.login_tokens = LoginTokens(LOGIN_FORM_S)
        secret = settings.fusionpbx_secret
        self.verifier = ConsoleTokenVerifier(secret.get_secret_value(), settings.token_max_age_s) if secret else None
        self.operations = {op.operation_id: op for op in OPERATIONS}

    async def session_of(self, request: web.Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(COOKIE), time.time())
        if session is None:
            return None
        key_uuid = session.principal.key_uuid
        if key_uuid is not None and not await self.services.keys.is_active(key_uuid):
            self.sessions.close(request.cookies.get(COOKIE))
            return None
        return session

    async def api_principal(self, request: web.Request, _services: AdminServices) -> Principal:
        """The admin API's operations for the page scripts: the session, and its CSRF token on a change."""
        session = await self.session_of(request)
        if session is None:
            raise Unauthorized("sign in to the console first")
        if request.method not in SAFE_METHODS and not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise Unauthorized(f"send the page's CSRF token in {CSRF_HEADER}")
        return session.principal

    def page(self, view: View) -> web.Handler:  # type: ignore[name-defined]
        """A signed-in page: to the login without a session; a form without its CSRF token is refused; what
        the operations refuse is shown as a page with the API's status."""

        async def handle(request: web.Request) -> web.StreamResponse:
            session = await self.session_of(request)
            if session is None:
                return redirect(f"{PREFIX}/login")
            page = Page(request, self, session)
            if request.method not in SAFE_METHODS:
                page.form = await request.post()
                if not session.csrf_matches(str(page.form.get(CSRF_FIELD, ""))):
                    return page.render("error.html", status=403, message="The form expired: reload the page.")
            try:
                return await view(request, page)
            except SecretaryError as exc:
                return page.render("error.html", status=status_for(exc), message=exc.message)

        return handle


CONSOLE: web.AppKey[Console] = web.AppKey("console")


# -- signing in and out ------------------------------------------------------------------------------------


def login_page(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    """The sign-in form, always with a fresh CSRF token: in its hidden field and in the pre-session cookie."""
    tokens = request.app[CONSOLE].login_tokens
    token = tokens.issue(time.time())
    response = aiohttp_jinja2.render_template(
        "login.html", request, {"error": error, "login_csrf": token}, status=status
    )
    tokens.set_cookie(request, response, token)
    return response


async def login_form(request: web.Request) -> web.Response:
    return login_page(request)


async def login(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:  # another site signing this browser in
        return login_page(request, "Sign in from the console's own page.", 403)
    form = await request.post()
    field = form.get(CSRF_FIELD)
    if not console.login_tokens.valid(request.cookies.get(LOGIN_COOKIE), str(field or ""), time.time()):
        # No Origin (an old browser, a stripping proxy) must not be a way around the Origin check.
        return login_page(request, "The sign-in form expired or came from elsewhere: sign in again.", 403)
    key = str(form.get("api_key", "")).strip()
    principal = await console.services.keys.authenticate(key) if key.isascii() and key.isprintable() else None
    if principal is None:
        return login_page(request, "Unknown or revoked API key.", 401)
    user = f"key {key[: len(KEY_PREFIX) + 6]}…"
    response = _signed_in(request, console, Session(principal, user))
    response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


def _signed_in(request: web.Request, console: Console, session: Session) -> web.Response:
    session_id = console.sessions.open(session, time.time())
    landing = domain_url(str(session.principal.domain_uuid)) if session.principal.domain_uuid else f"{PREFIX}/"
    # A page, not a redirect: a SameSite=Strict cookie set by a cross-site POST (from FusionPBX) is only sent
    # on a navigation the console's own page starts.
    response = aiohttp_jinja2.render_template("signed_in.html", request, {"landing": landing})
    set_cookie(request, response, session_id)
    return response


async def fusionpbx_login(request: web.Request) -> web.Response:
    """The FusionPBX app posts its signed token here (see `secretary.access.console_tokens`)."""
    console = request.app[CONSOLE]
    form = await request.post()
    if console.verifier is None:
        return login_page(request, "Signing in from FusionPBX is not set up (admin.console.fusionpbx_secret).", 401)
    try:
        grant = console.verifier.verify(str(form.get("token", "")), time.time())
    except TokenRefused as exc:
        log.info("console_token_refused", reason=str(exc))
        return login_page(request, str(exc), 401)
    if grant.principal.domain_uuid is not None:
        try:
            await console.services.domains.get(str(grant.principal.domain_uuid))
        except UnknownDomain:
            return login_page(request, "The domain this sign-in names is not in FusionPBX's database.", 401)
    return _signed_in(request, console, Session(grant.principal, grant.user))


async def logout(request: web.Request, page: Page) -> web.Response:
    page.console.sessions.close(request.cookies.get(COOKIE))
    response = redirect(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


# -- domains and their secretary ---------------------------------------------------------------------------


async def domains(request: web.Request, page: Page) -> web.Response:
    offset = request.query.get("offset", "0")
    found = await page.call(secretaries_api.list_domains, query={"offset": offset})
    return page.render("domains.html", domains=found)


def _ranges(form: MultiDictProxy[Any], day: str) -> list[str]:
    return [r.strip() for r in str(form.get(f"hours.{day}", "")).split(",") if r.strip()]


def secretary_payload(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The secretary form as the body of PUT/PATCH .../secretary (the API validates it and names a bad field)."""
    payload: dict[str, Any] = {name: str(form.get(name, "")) for name in TEXT_FIELDS}
    payload["playback_mode"] = str(form.get("playback_mode", "event"))
    payload["enabled"] = form.get("enabled") == "on"
    for number in ("max_turns", "max_call_seconds"):
        payload[number] = str(form.get(number, ""))
    payload["recording"] = {name: str(form.get(f"recording.{name}", "")) for name in RECORDING_FIELDS}
    if form.get("hours.enabled") == "on":
        closed = str(form.get("hours.closed_dates", "")).split()
        payload["business_hours"] = {
            "timezone": str(form.get("hours.timezone", "UTC")),
            "weekly": {day: _ranges(form, day) for day in WEEKDAYS if _ranges(form, day)},
            "closed_dates": closed,
        }
    else:
        payload["business_hours"] = None
    chains = str(form.get("providers", "")).strip()
    if chains:
        try:
            payload["providers"] = json.loads(chains)
        except json.JSONDecodeError as exc:
            raise BadInput(f"providers: not JSON ({exc.msg}, line {exc.lineno})", field="providers") from None
    return payload


async def secretary(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    try:
        stored: dict[str, Any] | None = await page.call(secretaries_api.get_secretary)
    except NoSecretary:
        stored = None
    if page.form is None:
        health = await operations_views.providers_health(page)
        return page.render(
            "secretary.html", domain=domain, secretary=stored or {}, exists=stored is not None, provider_health=health
        )
    try:
        payload = secretary_payload(page.form)
        if stored is None:
            await page.call(secretaries_api.put_secretary, body=payload)
        else:
            await page.call(secretaries_api.patch_secretary, body=payload)
    except SecretaryError as exc:
        shown = {k: page.form.get(k) for k in (*TEXT_FIELDS, "playback_mode", "max_turns", "max_call_seconds")}
        shown |= {"providers_text": page.form.get("providers", ""), "enabled": page.form.get("enabled") == "on"}
        shown |= {"recording": {f: page.form.get(f"recording.{f}") for f in RECORDING_FIELDS}}
        if page.form.get("hours.enabled") == "on":
            shown["business_hours"] = {
                "timezone": page.form.get("hours.timezone", "UTC"),
                "weekly": {day: _ranges(page.form, day) for day in WEEKDAYS},
                "closed_dates": str(page.form.get("hours.closed_dates", "")).split(),
            }
        return page.render(
            "secretary.html",
            status=status_for(exc),
            domain=domain,
            secretary=shown,
            exists=stored is not None,
            error=exc.message,
        )
    return page.back(domain_url(domain["domain_uuid"]), text="The secretary is saved.")


async def set_enabled(request: web.Request, page: Page) -> web.Response:
    assert page.form is not None
    enabled = page.form.get("enabled") == "true"
    saved = await page.call(secretaries_api.patch_secretary, body={"enabled": enabled})
    state = "enabled" if saved["enabled"] else "disabled"
    return page.back(domain_url(request.match_info["domain"]), text=f"The secretary is {state}.")


# -- transfer directory ------------------------------------------------------------------------------------


async def directory(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    error, status = None, 200
    if page.form is not None:
        entry = {
            "name": str(page.form.get("name", "")).strip(),
            "extension": str(page.form.get("extension", "")),
            "aliases": [a.strip() for a in str(page.form.get("aliases", "")).split(",") if a.strip()],
            "description": str(page.form.get("description", "")).strip(),
        }
        try:
            await page.call(secretaries_api.add_directory_entry, body=entry)
            return page.back(domain_url(domain["domain_uuid"], "/directory"), text=f"{entry['name']} is added.")
        except SecretaryError as exc:
            error, status = exc.message, status_for(exc)
    entries = (await page.call(secretaries_api.get_directory))["directory"]
    destinations = (await page.call(secretaries_api.list_destinations))["items"]
    return page.render(
        "directory.html",
        status=status,
        domain=domain,
        entries=entries,
        destinations=destinations,
        error=error,
        form=page.form or {},
    )


async def delete_directory_entry(request: web.Request, page: Page) -> web.Response:
    extension = request.match_info["extension"]
    await page.call(secretaries_api.delete_directory_entry)
    return page.back(domain_url(request.match_info["domain"], "/directory"), text=f"{extension} is removed.")


# -- knowledge ---------------------------------------------------------------------------------------------


async def documents(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    asked = answer = None
    if page.form is not None:
        asked = str(page.form.get("question", ""))
        answer = await page.call(documents_api.ask_knowledge, body={"question": asked})
    found = await page.call(documents_api.list_documents, query={"offset": request.query.get("offset", "0")})
    return page.render("documents.html", domain=domain, documents=found, asked=asked, answer=answer)


async def delete_document(request: web.Request, page: Page) -> web.Response:
    await page.call(documents_api.delete_document)
    return page.back(domain_url(request.match_info["domain"], "/documents"), text="The document is deleted.")


async def reindex_document(request: web.Request, page: Page) -> web.Response:
    result = await page.call(documents_api.reindex_document)
    text = f"Re-indexed: {result['chunks_indexed']} passages."
    return page.back(domain_url(request.match_info["domain"], "/documents"), text=text)


# -- calls and messages ------------------------------------------------------------------------------------


async def calls(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    names = ("from", "to", "outcome", "transport", "caller", "offset")
    filters = {k: v for k in names if (v := request.query.get(k, "").strip())}
    found = await page.call(calls_api.list_calls, query=filters)
    return page.render("calls.html", domain=domain, calls=found, filters=filters)


async def call_detail(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    record = await page.call(calls_api.get_call)
    return page.render("call.html", domain=domain, call=record)


async def messages(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    filters = {k: v for k in ("status", "offset") if (v := request.query.get(k, "").strip())}
    found = await page.call(messages_api.list_messages, query=filters)
    return page.render("messages.html", domain=domain, messages=found, filters=filters)


async def mark_message(request: web.Request, page: Page) -> web.Response:
    assert page.form is not None
    status = "handled" if page.form.get("status") == "handled" else "new"
    await page.call(messages_api.update_message, body={"status": status})
    return page.back(domain_url(request.match_info["domain"], "/messages"), text=f"The message is marked {status}.")


async def redeliver_message(request: web.Request, page: Page) -> web.Response:
    await page.call(messages_api.redeliver_message)
    return page.back(domain_url(request.match_info["domain"], "/messages"), text="Delivery is retried.")


# -- provider credentials ----------------------------------------------------------------------------------


async def credentials(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    error, status = None, 200
    if page.form is not None:
        name = str(page.form.get("name", "")).strip()
        body = {"secret": str(page.form.get("secret", "")), "description": str(page.form.get("description", ""))}
        try:
            await page.call(credentials_api.put_credential, body=body, name=name)
            return page.back(domain_url(domain["domain_uuid"], "/credentials"), text=f"{name} is stored.")
        except SecretaryError as exc:
            error, status = exc.message, status_for(exc)
    found = await page.call(credentials_api.list_credentials)
    return page.render("credentials.html", status=status, domain=domain, items=found["items"], error=error)


async def delete_credential(request: web.Request, page: Page) -> web.Response:
    await page.call(credentials_api.delete_credential)
    name = request.match_info["name"]
    return page.back(domain_url(request.match_info["domain"], "/credentials"), text=f"{name} is deleted.")


# -- a test call from the browser ---------------------------------------------------------------------------


def bridge_url(request: web.Request, settings: BridgeSettings) -> str:
    """Where the admin's browser reaches the bridge: `bridge.public_url`, else its host and port (the host the
    console was reached at when the bridge listens on every address)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else (request.url.host or "127.0.0.1")
    return f"ws://{f'[{host}]' if ':' in host else host}:{settings.port}"


async def browser_call(request: web.Request, page: Page) -> web.Response:
    """The page (GET); a press of "Call" (POST) gets a fresh call uuid and the stream URL with its token for
    this domain, minted here so the page never holds more than one call's right to the bridge."""
    domain = await page.call(secretaries_api.get_domain)  # the API's own check: another domain's is a 404
    settings = page.console.services.runtime.settings.bridge
    url = bridge_url(request, settings)
    if page.form is None:
        response = page.render(
            "test_call.html", domain=domain, available=settings.token_secret is not None,
            default_rate=settings.default_sample_rate,
        )  # fmt: skip
        bridge = urlsplit(url)
        policy = PAGE_HEADERS["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = f"{policy}; connect-src 'self' {bridge.scheme}://{bridge.netloc}"
        return response
    rate = 16000 if page.form.get("sample_rate") == "16000" else 8000
    call_uuid = uuid4()
    token = mint_test_call_token(settings, UUID(domain["domain_uuid"]), call_uuid, time.time())
    if token is None:
        return web.json_response({"error": "test calls need bridge.token_secret"}, status=409)
    stream = f"{url}/stream/{domain['domain_uuid']}/{call_uuid}?sample_rate={rate}&test_call={token}"
    record = domain_url(domain["domain_uuid"], f"/calls/{call_uuid}")
    return web.json_response({"url": stream, "call_uuid": str(call_uuid), "sample_rate": rate, "record": record})


# -- health ------------------------------------------------------------------------------------------------


async def health(request: web.Request, page: Page) -> web.Response:
    runtime = page.console.services.runtime
    checks = await runtime.health()
    # Benched providers name every domain's endpoints and credentials' fingerprints: for the operator only.
    benched = runtime.providers.health.unhealthy() if page.session.principal.is_superadmin else None
    checks["freeswitch esl"] = operations_views.esl_state(runtime)
    return page.render("health.html", checks=checks, benched=benched)


def _hours_text(ranges: list[Any]) -> str:
    """A day's opening hours for the form: stored ranges ({start, end}) or the text the admin typed."""
    shown = []
    for r in ranges:
        shown.append(r if isinstance(r, str) else f"{str(r['start'])[:5]}-{str(r['end'])[:5]}")
    return ", ".join(shown)


# The console's pages are never framed or cached, never sent on as a referrer, and load nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make the forms' Origin "null"
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


async def page_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(PREFIX) and not request.path.startswith(f"{PREFIX}/static/"):
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)  # a page may widen its own CSP (the test call's bridge)


def setup_console(app: web.Application, services: AdminServices | None, settings: ConsoleSettings) -> None:
    if services is None or not settings.enabled:
        return
    console = Console(services, settings)
    app[CONSOLE] = console
    app.on_response_prepare.append(page_headers)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("ivr_service.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        context_processors=[],
    )
    env.filters["hours"] = _hours_text
    env.filters["dict_merge"] = lambda values, **more: {**values, **more}
    env.globals |= {
        "weekdays": WEEKDAYS,
        "outcomes": [o.value for o in Outcome],
        "transports": [t.value for t in Transport],
        "prefix": PREFIX,
        "csrf_field": CSRF_FIELD,
    }
    add = app.router
    page = console.page
    d = f"{PREFIX}/domains/{{domain}}"
    add.add_get(f"{PREFIX}/login", login_form)
    add.add_post(f"{PREFIX}/login", login)
    add.add_post(f"{PREFIX}/fusionpbx", fusionpbx_login)
    add.add_post(f"{PREFIX}/logout", page(logout))
    add.add_get(f"{PREFIX}/", page(domains))
    add.add_get(f"{PREFIX}/health", page(health))
    add.add_route("*", d, page(secretary))
    add.add_post(f"{d}/enabled", page(set_enabled))
    add.add_route("*", f"{d}/directory", page(directory))
    add.add_post(f"{d}/directory/{{extension}}/delete", page(delete_directory_entry))
    add.add_route("*", f"{d}/documents", page(documents))
    add.add_post(f"{d}/documents/{{document_uuid}}/delete", page(delete_document))
    add.add_post(f"{d}/documents/{{document_uuid}}/reindex", page(reindex_document))
    add.add_get(f"{d}/calls", page(calls))
    add.add_get(f"{d}/calls/{{call_uuid}}", page(call_detail))
    add.add_get(f"{d}/messages", page(messages))
    add.add_post(f"{d}/messages/{{message_uuid}}/status", page(mark_message))
    add.add_post(f"{d}/messages/{{message_uuid}}/redeliver", page(redeliver_message))
    add.add_route("*", f"{d}/credentials", page(credentials))
    add.add_route("*", f"{d}/test-call", page(browser_call))
    add.add_post(f"{d}/credentials/{{name}}/delete", page(delete_credential))
    operations_views.add_routes(add, page, d)
    add.add_static(f"{PREFIX}/static", STATIC)
    for operation in OPERATIONS:  # the page scripts' way to the same operations
        add.add_route(operation.method, PREFIX + operation.full_path, route(operation, services, console.api_principal))
