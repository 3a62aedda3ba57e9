"""The dialplan entry that routes an extension to `secretary_ai.lua`, filled in from a template.

`dialplan/secretary_ai.xml` holds `{name}` placeholders; FreeSWITCH's own `${var}` references are left as
they are. Every value is checked (the result goes into FreeSWITCH's dialplan, so nothing may add an
action or escape an attribute) and XML-escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4
from xml.sax.saxutils import escape

TEMPLATE = Path(__file__).resolve().parent.parent / "dialplan" / "secretary_ai.xml"

_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z_]+)\}")
_EXTENSION = re.compile(r"^[A-Za-z0-9*#+_-]{1,32}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9_.-]{1,253}$")
_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")
_URL = re.compile(r"^https?://[A-Za-z0-9._~:\[\]@-]+(/[A-Za-z0-9._~/%:@-]*)?$")


class DialplanValueError(ValueError):
    pass


@dataclass(frozen=True)
class SecretaryDialplan:
    extension: str
    domain_uuid: UUID
    domain_name: str
    ivr_url: str
    fallback_destination: str
    spool_dir: str
    timeout_s: int = 20
    dialplan_uuid: UUID | None = None

    def values(self) -> dict[str, str]:
        if not _EXTENSION.match(self.extension):
            raise DialplanValueError(f"extension {self.extension!r} is not a plain extension")
        if not _EXTENSION.match(self.fallback_destination):
            raise DialplanValueError(f"fallback destination {self.fallback_destination!r} is not a plain extension")
        if not _DOMAIN.match(self.domain_name):
            raise DialplanValueError(f"domain name {self.domain_name!r} is not a plain host name")
        if not _URL.match(self.ivr_url):
            raise DialplanValueError(f"ivr_url {self.ivr_url!r} is not a plain http(s) URL")
        if not _PATH.match(self.spool_dir) or ".." in self.spool_dir:
            raise DialplanValueError(f"spool_dir {self.spool_dir!r} is not a plain absolute path")
        if not 1 <= self.timeout_s <= 300:
            raise DialplanValueError("timeout_s must be 1..300 seconds")
        return {
            "extension": self.extension,
            "extension_regex": re.escape(self.extension),
            "domain_uuid": str(self.domain_uuid),
            "domain_name": self.domain_name,
            "ivr_url": self.ivr_url.rstrip("/"),
            "fallback_destination": self.fallback_destination,
            "timeout_s": str(self.timeout_s),
            "spool_dir": self.spool_dir.rstrip("/"),
            "dialplan_uuid": str(self.dialplan_uuid or uuid4()),
        }


def fill_dialplan(entry: SecretaryDialplan, template: str | None = None) -> str:
    """The dialplan XML for `entry`; a placeholder the template names but `entry` lacks is an error."""
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    values = entry.values()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise DialplanValueError(f"the template names an unknown placeholder {{{name}}}")
        return escape(values[name], {'"': "&quot;"})

    return _PLACEHOLDER.sub(substitute, text)
