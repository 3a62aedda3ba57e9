"""The console's operations pages: the domain's dialplan rows (install, update, uninstall, with FusionPBX's
cache flushed) and its live calls; and what the health and secretary pages add (ESL, provider health). Like
every page, they go through the admin API's operations (`Page.call`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ivr_service.admin import dialplan as dialplan_api
from ivr_service.admin import live as live_api
from ivr_service.admin import secretaries as secretaries_api
from ivr_service.statuses import status_for
from secretary.errors import NoSecretary, SecretaryError
from secretary.runtime import Runtime

if TYPE_CHECKING:
    from ivr_service.console.views import Page, View


async def dialplan_page(request: web.Request, page: Page, result: dict[str, Any] | None = None) -> web.Response:
    """The rows and the install form; after a change, what it did (and what the admin must still do)."""
    domain = await page.call(secretaries_api.get_domain)
    error, status = None, 200
    if page.form is not None and result is None:
        extension = str(page.form.get("extension", "")).strip()
        body: dict[str, Any] = {"mode": str(page.form.get("mode", "turn"))}
        if fallback := str(page.form.get("fallback", "")).strip():
            body["fallback"] = fallback
        try:
            result = await page.call(dialplan_api.install_dialplan, body=body, extension=extension)
        except SecretaryError as exc:
            error, status = exc.message, status_for(exc)
    current = await page.call(dialplan_api.get_dialplan)
    return page.render(
        "dialplan.html",
        status=status,
        domain=domain,
        dialplan=current,
        result=result,
        error=error,
        form=page.form or {},
    )


async def uninstall_dialplan(request: web.Request, page: Page) -> web.Response:
    removed = await page.call(dialplan_api.uninstall_dialplan)
    return await dialplan_page(request, page, result=removed)


async def live_calls(request: web.Request, page: Page) -> web.Response:
    domain = await page.call(secretaries_api.get_domain)
    found = await page.call(live_api.list_live_calls)
    return page.render("live.html", domain=domain, calls=found)


async def providers_health(page: Page) -> dict[str, list[dict[str, Any]]]:
    """The secretary page's chains with each entry's health, by kind (empty without a secretary)."""
    try:
        found = await page.call(live_api.get_providers_health)
    except NoSecretary:
        return {}
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in found["items"]:
        by_kind.setdefault(item["kind"], []).append(item)
    return by_kind


def esl_state(runtime: Runtime) -> str:
    """The realtime bridge's ESL link when the bridge runs in this process; otherwise it can't be seen here."""
    if runtime.esl is not None:
        return "ok" if runtime.esl.connected else "down"
    return "not in this process" if runtime.settings.bridge.esl.enabled else "disabled"


def add_routes(router: web.UrlDispatcher, page: Callable[[View], Any], domain_path: str) -> None:
    """`page` wraps a view as a signed-in page (`Console.page`)."""
    router.add_route("*", f"{domain_path}/dialplan", page(dialplan_page))
    router.add_post(f"{domain_path}/dialplan/{{extension}}/delete", page(uninstall_dialplan))
    router.add_get(f"{domain_path}/live", page(live_calls))
