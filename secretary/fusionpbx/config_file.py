"""FusionPBX's `/etc/fusionpbx/config.conf`: `key = value` lines, read by FusionPBX with PHP's `parse_ini_file`.

The service reads the event socket password from it, so that it always uses the password FusionPBX itself uses
(its web pages and Lua scripts connect to the same event socket): change it in one place, not three.
"""

from __future__ import annotations

from pathlib import Path

# FusionPBX's own order: the current key, the one older releases wrote, then FreeSWITCH's default.
ESL_PASSWORD_KEYS = ("switch.event_socket.password", "event_socket.password")
ESL_DEFAULT_PASSWORD = "ClueCon"


def parse_config(text: str) -> dict[str, str]:
    """`key = value` per line; `#` and `;` lines are comments; a value may be quoted, an unquoted one ends at
    `;` (as in parse_ini_file). Later keys win."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;[" or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(";", 1)[0].strip()
        values[key.strip()] = value
    return values


def event_socket_password(path: Path) -> str:
    """The password FusionPBX connects to the event socket with. Raises OSError when the file can't be read."""
    config = parse_config(path.read_text(encoding="utf-8", errors="replace"))
    for key in ESL_PASSWORD_KEYS:
        if config.get(key):
            return config[key]
    return ESL_DEFAULT_PASSWORD
