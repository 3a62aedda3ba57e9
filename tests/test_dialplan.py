"""The dialplan template: filled in, it is well-formed FreeSWITCH/FusionPBX dialplan XML that routes the
extension to the script with the channel variables the script reads, and no value can break out of it."""

from __future__ import annotations

import re
from uuid import UUID

import pytest
from lxml import etree

from freeswitch.dialplan import TEMPLATE, DialplanValueError, SecretaryDialplan, fill_dialplan
from freeswitch.lua_sim import LUA_DIR
from tests.support.databases import ACME


def entry(**changes: object) -> SecretaryDialplan:
    values: dict[str, object] = {
        "extension": "5000",
        "domain_uuid": UUID(ACME),
        "domain_name": "acme.example.com",
        "ivr_url": "http://10.0.0.5:8086/",
        "fallback_destination": "1001",
        "spool_dir": "/var/lib/voiceai/spool/",
        "dialplan_uuid": UUID("da000000-0001-4000-8000-000000005000"),
    }
    values.update(changes)
    return SecretaryDialplan(**values)  # type: ignore[arg-type]


def parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), parser=etree.XMLParser(remove_comments=True))


def test_filled_template_routes_the_extension_to_the_script() -> None:
    root = parse(fill_dialplan(entry()))
    assert root.tag == "extension"
    assert (root.get("name"), root.get("continue"), root.get("uuid")) == (
        "ai_secretary_5000",
        "false",
        "da000000-0001-4000-8000-000000005000",
    )
    (condition,) = root.findall("condition")
    assert condition.get("field") == "destination_number"
    pattern = re.compile(condition.get("expression") or "")
    assert pattern.match("5000") and not pattern.match("50000") and not pattern.match("15000")
    actions = [(a.get("application"), a.get("data")) for a in condition.findall("action")]
    assert actions == [
        ("set", f"domain_uuid={ACME}"),
        ("set", "domain_name=acme.example.com"),
        ("set", "voiceai_url=http://10.0.0.5:8086"),
        ("set", "voiceai_fallback=1001"),
        ("set", "voiceai_fallback_context=${domain_name}"),  # FreeSWITCH's own variables are left alone
        ("set", "voiceai_timeout=20"),
        ("set", "voiceai_spool_dir=/var/lib/voiceai/spool"),
        ("lua", "secretary_ai.lua"),
    ]
    assert (LUA_DIR / "secretary_ai.lua").is_file()


def test_every_variable_set_is_one_the_script_reads() -> None:
    script = (LUA_DIR / "secretary_ai.lua").read_text()
    read = set(re.findall(r'channel_var\("([a-z_]+)"\)', script))
    root = parse(fill_dialplan(entry()))
    set_names = {(a.get("data") or "").split("=", 1)[0] for a in root.iter("action") if a.get("application") == "set"}
    assert set_names <= read, set_names - read


def test_star_codes_are_escaped_in_the_expression() -> None:
    condition = parse(fill_dialplan(entry(extension="*98"))).find("condition")
    assert condition is not None
    assert re.fullmatch(condition.get("expression") or "", "*98")


@pytest.mark.parametrize(
    "changes",
    [
        {"extension": '5000"/><action application="system" data="rm -rf /'},
        {"extension": ""},
        {"fallback_destination": "1001 XML other"},
        {"domain_name": "acme<example>"},
        {"ivr_url": "http://host/ x"},
        {"ivr_url": "file:///etc/passwd"},
        {"ivr_url": "http://host/'quoted'"},
        {"spool_dir": "/var/spool/../../etc"},
        {"spool_dir": "relative/spool"},
        {"timeout_s": 0},
    ],
)
def test_unsafe_values_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(DialplanValueError):
        fill_dialplan(entry(**changes))


def test_template_placeholders_are_all_known() -> None:
    names = set(re.findall(r"(?<!\$)\{([a-z_]+)\}", TEMPLATE.read_text()))
    assert names == set(entry().values())
    with pytest.raises(DialplanValueError, match="unknown placeholder"):
        fill_dialplan(entry(), template="<extension name='{nope}'/>")


def test_wraps_into_a_plain_freeswitch_context() -> None:
    """Without FusionPBX the same entry goes into the domain's context of an <include> file."""
    extension = fill_dialplan(entry())
    document = f'<include><context name="acme.example.com">{extension}</context></include>'
    root = etree.fromstring(document.encode())
    assert root.find("context/extension/condition/action[@application='lua']") is not None
