"""Where a tenant-chosen endpoint may point: the one place that decides it (SECURITY.md, "Endpoints").

A database secretary is tenant-editable: without this, its `base_url`s, webhook and SMTP host could reach
the operator's own network (the v1 and admin APIs on loopback, Redis, PostgreSQL, cloud metadata, the LAN).
Its endpoints may reach public addresses only, besides the operator's own endpoints (`llm.base_url`,
`credentials.operator_endpoints`, `knowledge.chroma_url`, `smtp.host`) and what the operator allows
(`endpoints.allow_networks`, `endpoints.allow_hosts`). Not restricted: the operator's YAML secretaries, and
entries only the operator can write (those naming an `*_env` credential, see `operator_owned_changes`).

Names are resolved off the event loop and each answer is kept `endpoints.resolve_cache_s`: `prepare`
(awaited where a config is loaded) looks up the names a config uses that have no fresh answer; `check`
(synchronous, where adapters are built, on every build, cached adapters too) decides from the kept answers
and refreshes an old one in the background, so no build waits for DNS. A name with any non-public address
is refused: answers mixing a public and a private address are the usual DNS-rebinding trick. This is a
check before use: the HTTP clients resolve again when they connect, so a name that rebinds in between is
refused from its next lookup on, not before.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

import structlog

from secretary.settings import Settings
from secretary.tasks import cancel_and_wait
from secretary.tenants.config import MessageSettings, ProviderSpec, SecretaryConfig, SmtpServer

log = structlog.get_logger(__name__)

Address = IPv4Address | IPv6Address
# host -> its addresses; an empty tuple: it does not resolve.
Lookup = Callable[[str], Awaitable[tuple[Address, ...]]]

HTTP = frozenset({"http", "https"})
WEB = HTTP | {"ws", "wss"}  # the realtime engines speak WebSocket
SMTP = frozenset({"smtp"})
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # `127.1`, `0x7f.1`, `2130706433`: IPv4 in disguise


class EndpointNotAllowed(ValueError):
    """An endpoint this config may not reach. The message names the host, never the URL (it may carry a
    token) and is safe to show the domain's admin."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint a config names: `field` as the admin API spells it, `url` (an SMTP server is written
    `smtp://host:port`), the schemes it may use, and whether only the operator can have written it."""

    field: str
    url: str
    schemes: frozenset[str] = HTTP
    operator_written: bool = False


def provider_endpoint(
    kind: str, spec: ProviderSpec, url: str | None = None, index: int | None = None
) -> Endpoint | None:
    """The endpoint an entry is sent to: `url` (its effective base URL) or its own `base_url`; None when
    it uses the provider's own."""
    target = url or spec.base_url
    if target is None:
        return None
    field = f"providers.{kind}.{index}.base_url" if index is not None else f"providers.{kind}.base_url"
    return Endpoint(field, target, WEB if kind == "realtime" else HTTP, spec.api_key_env is not None)


def webhook_endpoint(messages: MessageSettings, url: str) -> Endpoint:
    """`url` is written by the operator when it is the URL of the operator's webhook secret (a pair a domain
    key can't change)."""
    operator = messages.webhook_secret_env is not None and messages.webhook_url == url
    return Endpoint("messages.webhook_url", url, HTTP, operator)


def _smtp_url(host: str, port: int) -> str:
    bare = host.strip().removeprefix("[").removesuffix("]")
    return f"smtp://[{bare}]:{port}" if ":" in bare else f"smtp://{bare}:{port}"


def smtp_endpoint(server: SmtpServer) -> Endpoint:
    return Endpoint("messages.smtp.host", _smtp_url(server.host, server.port), SMTP, server.password_env is not None)


def endpoints_of(config: SecretaryConfig) -> list[Endpoint]:
    """Every endpoint a config names, in the admin API's field order."""
    found: list[Endpoint] = []
    for kind in ("stt", "brain", "tts", "realtime", "embeddings"):
        for index, spec in enumerate(getattr(config.providers, kind)):
            endpoint = provider_endpoint(kind, spec, index=index)
            if endpoint is not None:
                found.append(endpoint)
    if config.messages.webhook_url:
        found.append(webhook_endpoint(config.messages, config.messages.webhook_url))
    if config.messages.smtp is not None:
        found.append(smtp_endpoint(config.messages.smtp))
    return found


@dataclass(frozen=True, slots=True)
class _Target:
    host: str  # lower-case, no trailing dot, IPv6 without brackets
    port: int
    address: Address | None  # when the host is an IP literal


def _target(endpoint: Endpoint) -> _Target:
    """The host and port `endpoint` connects to; refuses what the HTTP clients might parse differently."""
    url = endpoint.url.strip()
    if "\\" in url or any(c.isspace() or ord(c) < 32 for c in url):
        raise EndpointNotAllowed("the URL holds a backslash, blank or control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed or invalid [IPv6] host, a port that is no number or out of range
        raise EndpointNotAllowed("no host and port this service can read (a port is a number up to 65535)") from None
    scheme = parts.scheme.lower()
    if scheme not in endpoint.schemes:
        allowed = " or ".join(sorted(endpoint.schemes))
        raise EndpointNotAllowed(f"{scheme or 'a missing'} scheme is not allowed here (use {allowed})")
    if "@" in parts.netloc:
        raise EndpointNotAllowed("the URL names a user (user@host): not allowed")
    host = (parts.hostname or "").rstrip(".")
    if scheme == "smtp" and (parts.path or parts.query or parts.fragment):
        host = ""
    address = _literal(host)
    if address is None and (not _NAME.fullmatch(host) or _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1])):
        raise EndpointNotAllowed("no host name or IP address this service can check")
    return _Target(str(address) if address else host, port or _DEFAULT_PORTS.get(scheme, 0), address)


def _literal(host: str) -> Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _host_entry(entry: str) -> tuple[str, int | None]:
    """An `endpoints.allow_hosts` entry as (host, port or None), spelled as `_target` spells hosts."""
    parts = urlsplit(f"//{entry.strip()}")
    host = (parts.hostname or "").rstrip(".")
    address = _literal(host)
    return (str(address) if address else host), parts.port


async def _system_lookup(host: str) -> tuple[Address, ...]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return ()
    return tuple(dict.fromkeys(ip_address(str(info[4][0])) for info in infos))


class EndpointPolicy:
    """`lookup` and `clock` are injected by tests (a rebinding name, an answer growing old)."""

    def __init__(
        self, settings: Settings, lookup: Lookup = _system_lookup, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings.endpoints
        self._lookup = lookup
        self._clock = clock
        self._networks = list(settings.endpoints.allow_networks)
        self._hosts = {_host_entry(entry) for entry in settings.endpoints.allow_hosts}
        operator = [*settings.credentials.operator_endpoints, settings.llm.base_url, settings.knowledge.chroma_url]
        if settings.smtp.host:
            operator.append(_smtp_url(settings.smtp.host, settings.smtp.port))
        self._operator: set[tuple[str, int]] = set()  # (host, port) of the operator's own endpoints
        for url in filter(None, operator):
            try:
                target = _target(Endpoint("operator", url, WEB | SMTP))
            except EndpointNotAllowed:
                continue
            self._operator.add((target.host, target.port))
        self._answers: dict[str, tuple[float, tuple[Address, ...]]] = {}  # host -> (resolved at, addresses)
        self._pending: dict[str, asyncio.Task[tuple[Address, ...]]] = {}

    # -- deciding --------------------------------------------------------------------------------------------

    def check(self, endpoint: Endpoint | None, config: SecretaryConfig) -> None:
        """Raises `EndpointNotAllowed` unless `config` may reach `endpoint`; never waits: a name is judged by
        its kept answer (none yet: refused until the lookup it starts has answered)."""
        target = self._restricted(endpoint, config)
        if target is None:
            return
        addresses = self._kept(target.host)
        if addresses is None:
            raise EndpointNotAllowed(f"{target.host} is not resolved yet")
        self._judge(target, addresses)

    async def verify(self, endpoint: Endpoint | None, config: SecretaryConfig, *, unresolved_ok: bool = False) -> None:
        """`check`, waiting for the lookup when no answer is kept. `unresolved_ok`: a name that does not
        resolve passes (an admin may write it before its DNS exists; it is checked again where it is used)."""
        target = self._restricted(endpoint, config)
        if target is None:
            return
        addresses = self._kept(target.host)
        if addresses is None:
            addresses = await self._resolve(target.host)
        if addresses or not unresolved_ok:
            self._judge(target, addresses)

    async def prepare(self, config: SecretaryConfig) -> None:
        """Looks up the names `config`'s endpoints use that have no answer, or an old one, so the builds
        that follow need not wait (a name costs one lookup per `resolve_cache_s`, not one per build)."""
        if config.operator_owned:
            return
        hosts = set()
        for endpoint in endpoints_of(config):
            try:
                target = self._restricted(endpoint, config)
            except EndpointNotAllowed:
                continue
            if target is not None and self._due(target.host):
                hosts.add(target.host)
        await asyncio.gather(*(self._resolve(host) for host in hosts))

    def _restricted(self, endpoint: Endpoint | None, config: SecretaryConfig) -> _Target | None:
        """The target still to be judged by its name's addresses; None when `endpoint` is allowed already."""
        if endpoint is None or config.operator_owned or endpoint.operator_written:
            return None
        target = _target(endpoint)
        if (target.host, target.port) in self._operator or any(
            host == target.host and port in (None, target.port) for host, port in self._hosts
        ):
            return None
        if target.address is not None:
            self._judge(target, (target.address,))
            return None
        if target.host == "localhost" or target.host.endswith(".localhost"):
            raise EndpointNotAllowed(
                f"{target.host} is this machine; the operator can allow it (endpoints.allow_hosts)"
            )
        return target

    def _judge(self, target: _Target, addresses: tuple[Address, ...]) -> None:
        if not addresses:
            raise EndpointNotAllowed(f"{target.host} does not resolve")
        for address in addresses:
            if not self._address_allowed(address):
                via = "" if target.address is not None else f" resolves to {address}, which"
                raise EndpointNotAllowed(
                    f"{target.host}{via} is not a public address; the operator can allow it "
                    "(endpoints.allow_networks / endpoints.allow_hosts)"
                )

    def _address_allowed(self, address: Address) -> bool:
        """Public (and not multicast), or in a network the operator allowed. An IPv4-mapped IPv6 address is
        its IPv4 address; a 6to4 address is allowed only if the IPv4 address inside it is too."""
        candidates: list[Address] = [address]
        if isinstance(address, IPv6Address):
            if address.ipv4_mapped is not None:
                candidates = [address.ipv4_mapped]
            elif address.sixtofour is not None:
                candidates.append(address.sixtofour)
        return all(
            any(c in network for network in self._networks) or (c.is_global and not c.is_multicast) for c in candidates
        )

    # -- resolving -------------------------------------------------------------------------------------------

    def _due(self, host: str) -> bool:
        kept = self._answers.get(host)
        return kept is None or self._clock() - kept[0] >= self._settings.resolve_cache_s

    def _kept(self, host: str) -> tuple[Address, ...] | None:
        """The kept answer for `host` (None: none yet); an old one is still used while a fresh lookup runs."""
        if self._due(host):
            self._start(host)
        kept = self._answers.get(host)
        return kept[1] if kept is not None else None

    def _start(self, host: str) -> asyncio.Task[tuple[Address, ...]] | None:
        task = self._pending.get(host)
        if task is None:
            try:
                task = asyncio.get_running_loop().create_task(self._lookup_and_keep(host))
            except RuntimeError:  # no event loop (a synchronous caller): nothing to refresh in
                return None
            self._pending[host] = task
            task.add_done_callback(lambda _: self._pending.pop(host, None))
        return task

    async def _resolve(self, host: str) -> tuple[Address, ...]:
        task = self._start(host)
        assert task is not None  # a coroutine runs in an event loop
        return await asyncio.shield(task)

    async def _lookup_and_keep(self, host: str) -> tuple[Address, ...]:
        try:
            async with asyncio.timeout(self._settings.resolve_timeout_s):
                addresses = await self._lookup(host)
        except TimeoutError:
            addresses = ()
        if not addresses:
            log.warning("endpoint_unresolved", host=host)
        self._answers[host] = (self._clock(), addresses)
        return addresses

    async def close(self) -> None:
        await cancel_and_wait(*self._pending.values())
