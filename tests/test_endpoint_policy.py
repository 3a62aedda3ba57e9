"""The egress policy for tenant-chosen endpoints (`EndpointPolicy`): which hosts a database secretary may
reach. Literal addresses are judged without any lookup; names get a pinned DNS answer (`lookup` injected),
so nothing here sends a packet anywhere — public addresses only ever appear as text."""

from __future__ import annotations

import asyncio
import re
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from secretary.credentials.endpoints import (
    HTTP,
    SMTP,
    WEB,
    Address,
    Endpoint,
    EndpointNotAllowed,
    EndpointPolicy,
    endpoints_of,
    smtp_endpoint,
)
from secretary.providers import ProviderFactory
from secretary.settings import Settings
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig, SmtpServer
from tests.conftest import acme_config

TENANT = acme_config()  # as the database store serves it: tenant-editable
OPERATOR = TENANT.owned_by_operator()  # as the YAML store serves it

REFUSED_LITERALS = [
    "127.0.0.1",
    "127.10.20.30",
    "0.0.0.0",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "192.0.2.10",  # documentation
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::FFFF:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[fe80::1]",
    "[fd00::1]",
    "[ff0e::1]",  # global-scope multicast
    "[2002:7f00:1::1]",  # 6to4 around 127.0.0.1
    "[2002:a00:5::1]",  # 6to4 around 10.0.0.5
]
# IPv4 spelled as getaddrinfo reads it but ipaddress does not: refused without a lookup.
DISGUISED = ["127.1", "0x7f.0.0.1", "0x7f000001", "2130706433", "0177.0.0.1", "10.1"]
PUBLIC_LITERALS = ["93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "[::ffff:93.184.216.34]"]


def _settings(**values: Any) -> Settings:
    return Settings(database_url=None, redis_url=None, **values)


def _policy(**values: Any) -> EndpointPolicy:
    return EndpointPolicy(_settings(**values))


def _http(host: str, port: int | None = None, path: str = "/v1") -> Endpoint:
    return Endpoint("providers.brain.0.base_url", f"http://{host}{f':{port}' if port else ''}{path}")


def _allowed(policy: EndpointPolicy, endpoint: Endpoint, config: SecretaryConfig = TENANT) -> bool:
    try:
        policy.check(endpoint, config)
    except EndpointNotAllowed:
        return False
    return True


@pytest.mark.parametrize("host", REFUSED_LITERALS + DISGUISED)
def test_a_tenant_may_not_reach_a_non_public_address(host: str) -> None:
    policy = _policy()
    with pytest.raises(EndpointNotAllowed, match=r"not a public address|no host name or IP address"):
        policy.check(_http(host, 8087), TENANT)
    assert not _allowed(policy, smtp_endpoint(SmtpServer(host=host.strip("[]"), port=25)))
    assert _allowed(policy, _http(host, 8087), OPERATOR)  # the operator's YAML secretaries are not restricted


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "api.localhost", "Redis.LocalHost."])
def test_localhost_by_any_spelling_is_refused_without_a_lookup(host: str) -> None:
    with pytest.raises(EndpointNotAllowed, match="is this machine"):
        _policy().check(_http(host, 6379), TENANT)


@pytest.mark.parametrize("host", PUBLIC_LITERALS)
def test_public_addresses_are_allowed(host: str) -> None:
    assert _allowed(_policy(), _http(host, 443))


def test_the_operators_own_endpoints_are_allowed_on_their_port_only() -> None:
    policy = _policy(
        llm={"base_url": "http://10.1.1.1:8000/v1"},
        credentials={"operator_endpoints": ["https://Proxy.LAN:8443"]},
        knowledge={"chroma_url": "http://127.0.0.1:8000"},
        smtp={"host": "127.0.0.1", "port": 25},
    )
    assert _allowed(policy, _http("10.1.1.1", 8000, "/other"))
    assert not _allowed(policy, _http("10.1.1.1", 8001))
    assert _allowed(policy, Endpoint("f", "https://proxy.lan:8443/v1"))
    assert _allowed(policy, _http("127.0.0.1", 8000))
    assert not _allowed(policy, _http("127.0.0.1", 8086))  # the v1 API is no operator endpoint
    assert _allowed(policy, Endpoint("messages.smtp.host", "smtp://127.0.0.1:25", SMTP))
    assert not _allowed(policy, Endpoint("messages.smtp.host", "smtp://127.0.0.1:6379", SMTP))


def test_operator_allowances_networks_and_hosts_with_or_without_a_port() -> None:
    policy = _policy(
        endpoints={
            "allow_networks": ["10.0.0.0/8", "fd00::/8"],
            "allow_hosts": ["Ollama.LAN.:11434", "127.0.0.1:11434", "[FD12::0007]", "vllm.lan"],
        }
    )
    assert _allowed(policy, _http("10.200.0.5", 8000))
    assert _allowed(policy, _http("[::ffff:10.0.0.5]", 8000))  # the mapped form is the same host
    assert _allowed(policy, _http("[fd00::9]", 8000))
    assert not _allowed(policy, _http("192.168.0.5", 8000))
    assert _allowed(policy, _http("OLLAMA.lan", 11434))
    assert not _allowed(policy, _http("ollama.lan", 11435))  # another port: judged by its addresses (none yet)
    assert _allowed(policy, _http("127.0.0.1", 11434))
    assert not _allowed(policy, _http("127.0.0.1", 8087))
    assert _allowed(policy, _http("[fd12::7]", 1234))
    assert _allowed(policy, _http("vllm.lan", 80)) and _allowed(policy, Endpoint("f", "https://vllm.lan:8443/v1"))
    with pytest.raises(ValueError, match="not host or host:port"):
        _policy(endpoints={"allow_hosts": ["http://ollama.lan/v1"]})
    with pytest.raises(ValueError):
        _policy(endpoints={"allow_networks": ["10.0.0.5/8"]})  # host bits set: a typo more likely than a network


@pytest.mark.parametrize(
    ("url", "schemes", "reason"),
    [
        ("ftp://93.184.216.34/v1", HTTP, "ftp scheme"),
        ("file:///etc/passwd", HTTP, "file scheme"),
        ("gopher://93.184.216.34:6379/_PING", HTTP, "gopher scheme"),
        ("ws://93.184.216.34/v1", HTTP, "ws scheme"),
        ("93.184.216.34:443", HTTP, "scheme"),
        ("not a url", HTTP, "blank"),
        ("http://user@93.184.216.34/v1", HTTP, "names a user"),
        ("https://93.184.216.34:8443@127.0.0.1/v1", HTTP, "names a user"),
        ("http://93.184.216.34\\@127.0.0.1/v1", HTTP, "backslash"),
        ("http://93.184.216.34:99999/v1", HTTP, "port"),
        ("http://[::1/v1", HTTP, "no host and port"),
        ("http:///v1", HTTP, "no host name"),
        ("smtp://mail.example.com/x:25", SMTP, "no host name"),
    ],
)
def test_what_the_clients_might_read_differently_is_refused(url: str, schemes: frozenset[str], reason: str) -> None:
    with pytest.raises(EndpointNotAllowed, match=reason):
        _policy().check(Endpoint("f", url, schemes), TENANT)


def test_websocket_schemes_only_where_an_engine_speaks_them() -> None:
    assert _allowed(_policy(), Endpoint("providers.realtime.0.base_url", "wss://93.184.216.34/v1", WEB))
    assert _allowed(_policy(), Endpoint("providers.realtime.0.base_url", "WS://93.184.216.34/v1", WEB))
    fields = {e.field: e.schemes for e in endpoints_of(_tenant_with_everything("http://h.example"))}
    assert fields["providers.realtime.0.base_url"] == WEB
    assert fields["providers.stt.0.base_url"] == HTTP and fields["messages.webhook_url"] == HTTP


def _tenant_with_everything(url: str) -> SecretaryConfig:
    return SecretaryConfig.model_validate(
        TENANT.model_dump()
        | {
            "providers": {
                kind: [{"name": "openai", "base_url": url}, {"name": "openai", "base_url": url, "api_key_env": "K"}]
                for kind in ("stt", "brain", "tts", "realtime", "embeddings")
            },
            "messages": {"webhook_url": url + "/hook", "smtp": {"host": "::1", "port": 2525}},
        }
    )


def test_every_endpoint_field_is_listed_and_operator_written_entries_are_marked() -> None:
    found = endpoints_of(_tenant_with_everything("http://127.0.0.1:8086"))
    assert [(e.field, e.operator_written) for e in found] == [
        *[
            (f"providers.{kind}.{index}.base_url", index == 1)
            for kind in ("stt", "brain", "tts", "realtime", "embeddings")
            for index in (0, 1)
        ],
        ("messages.webhook_url", False),
        ("messages.smtp.host", False),
    ]
    assert found[-1].url == "smtp://[::1]:2525"
    policy = _policy()
    assert [e.field for e in found if not _allowed(policy, e)] == [e.field for e in found if not e.operator_written]


class Dns:
    """A pinned DNS: `answers` per name, changed by the test (a rebinding name); counts the lookups."""

    def __init__(self, **answers: list[str]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self.stalled = asyncio.Event()  # a name answered "stall" never answers

    async def __call__(self, host: str) -> tuple[Address, ...]:
        self.lookups.append(host)
        answer = self.answers.get(host.replace(".", "_"), [])
        if answer == ["stall"]:
            await self.stalled.wait()
        return tuple(ip_address(a) for a in answer)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _named(dns: Dns, clock: Clock | None = None, **endpoints: Any) -> EndpointPolicy:
    settings = Settings(database_url=None, redis_url=None, endpoints={"resolve_timeout_s": 0.2, **endpoints})
    return EndpointPolicy(settings, lookup=dns, clock=clock or Clock())


def _config(url: str) -> SecretaryConfig:
    return SecretaryConfig.model_validate(
        TENANT.model_dump() | {"providers": {"brain": [{"name": "openai", "base_url": url}]}}
    )


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    dns = Dns(
        api_example=["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        mixed_example=["93.184.216.34", "127.0.0.1"],  # the multi-answer rebinding trick
        inside_example=["10.0.0.5"],
        mapped_example=["::ffff:127.0.0.1"],
    )
    policy = _named(dns)
    await policy.verify(_http("api.example"), TENANT)
    for name, address in (("mixed.example", "127.0.0.1"), ("inside.example", "10.0.0.5")):
        with pytest.raises(EndpointNotAllowed, match=re.escape(f"{name} resolves to {address}, which is not a public")):
            await policy.verify(_http(name), TENANT)
    with pytest.raises(EndpointNotAllowed, match="not a public"):
        await policy.verify(_http("MAPPED.example."), TENANT)
    allowed = _named(dns, allow_networks=["10.0.0.0/24"])
    await allowed.verify(_http("inside.example"), TENANT)  # a LAN name inside an allowed network


async def test_builds_never_wait_for_dns_and_a_name_is_looked_up_once_per_cache_period() -> None:
    dns, clock = Dns(api_example=["93.184.216.34"]), Clock()
    policy = _named(dns, clock)
    config = _config("https://api.example/v1")
    endpoint = endpoints_of(config)[0]
    with pytest.raises(EndpointNotAllowed, match="not resolved yet"):
        policy.check(endpoint, config)  # no answer yet: refused at once, the lookup starts meanwhile
    await policy.prepare(config)  # what loading a config awaits
    for _ in range(50):
        policy.check(endpoint, config)
    assert dns.lookups == ["api.example"]
    await policy.close()


async def test_a_name_that_rebinds_to_loopback_is_refused_from_its_next_lookup() -> None:
    dns, clock = Dns(rebind_example=["93.184.216.34"]), Clock()
    policy = _named(dns, clock)
    config = _config("http://rebind.example:8086/v1")
    endpoint = endpoints_of(config)[0]
    await policy.prepare(config)
    policy.check(endpoint, config)
    dns.answers["rebind_example"] = ["127.0.0.1"]
    clock.now += 29.0
    await policy.prepare(config)
    policy.check(endpoint, config)  # within resolve_cache_s (30 s): the kept answer
    clock.now += 2.0
    await policy.prepare(config)  # the next config load looks it up again
    with pytest.raises(EndpointNotAllowed, match=r"resolves to 127\.0\.0\.1"):
        policy.check(endpoint, config)
    assert dns.lookups == ["rebind.example", "rebind.example"]


async def test_a_name_that_does_not_resolve_is_refused_where_used_and_accepted_where_written() -> None:
    dns = Dns(slow_example=["stall"])
    policy = _named(dns)
    for name in ("nowhere.example", "slow.example"):  # no answer; an answer slower than resolve_timeout_s
        with pytest.raises(EndpointNotAllowed, match="does not resolve"):
            await policy.verify(_http(name), TENANT)
        await policy.verify(_http(name), TENANT, unresolved_ok=True)
    dns.stalled.set()
    await policy.close()


def test_addresses_are_compared_as_addresses() -> None:
    assert IPv6Address("::ffff:127.0.0.1").ipv4_mapped == IPv4Address("127.0.0.1")  # what the policy relies on
    policy = _policy(endpoints={"allow_hosts": ["[0:0::1]:9000"]})
    assert _allowed(policy, _http("[::1]", 9000)) and _allowed(policy, _http("[0::0:1]", 9000))


async def test_an_ollama_entry_without_base_url_means_this_machine(models: LocalModels) -> None:
    """Ollama's default endpoint is 127.0.0.1:11434: a tenant's entry gets it only where the operator allowed
    it; building the chain contacts nothing."""
    config = SecretaryConfig.model_validate(TENANT.model_dump() | {"providers": {"brain": [{"name": "ollama"}]}})
    pool = CpuPool(1)
    try:
        for allow_hosts, brains in (([], ["front_desk"]), (["127.0.0.1:11434"], ["ollama", "front_desk"])):
            factory = ProviderFactory(_settings(endpoints={"allow_hosts": allow_hosts}), models, pool)
            assert factory.brain(config).name == "+".join(brains)
            await factory.close()
    finally:
        pool.close()
