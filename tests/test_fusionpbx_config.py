"""The event socket password comes from FusionPBX's own config.conf: the bridge uses what FusionPBX uses, and
picks a change up at its next connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from freeswitch.esl import EslClient
from freeswitch.esl_server_sim import EslServerSimulator
from secretary.fusionpbx.config_file import event_socket_password, parse_config
from secretary.settings import EslSettings

pytestmark = pytest.mark.timeout(30)

# The shape FusionPBX's Debian installer writes (debian/resources/fusionpbx/config.conf), plus the ESL keys.
CONFIG = """
#database system settings
database.0.type = pgsql
database.0.host = 127.0.0.1
database.0.password = Zx81abc

#cache settings
cache.method = file
cache.location = /var/cache/fusionpbx
{esl}
"""


def test_config_conf_is_read_as_fusionpbx_reads_it(tmp_path: Path) -> None:
    values = parse_config(CONFIG.format(esl='switch.event_socket.password = "p;ss w0rd"\nphp.bin = php ; comment'))
    assert values["database.0.password"] == "Zx81abc" and values["cache.location"] == "/var/cache/fusionpbx"
    assert values["switch.event_socket.password"] == "p;ss w0rd" and values["php.bin"] == "php"
    path = tmp_path / "config.conf"
    path.write_text(CONFIG.format(esl=""))
    assert event_socket_password(path) == "ClueCon"  # FusionPBX's own default when the key is absent
    path.write_text(CONFIG.format(esl="event_socket.password = legacy"))
    assert event_socket_password(path) == "legacy"  # the key older FusionPBX releases used
    path.write_text(CONFIG.format(esl="event_socket.password = legacy\nswitch.event_socket.password = current"))
    assert event_socket_password(path) == "current"


async def test_the_esl_client_authenticates_with_fusionpbxs_password(tmp_path: Path) -> None:
    config = tmp_path / "config.conf"
    config.write_text(CONFIG.format(esl="switch.event_socket.password = Fr0mFusionPBX"))
    switch = EslServerSimulator(password="Fr0mFusionPBX")
    port = await switch.start()
    settings = EslSettings.model_validate(
        {"port": port, "password": "ignored", "password_file": config, "reconnect_max_s": 0.2}
    )
    client = EslClient(settings)
    client.start()
    try:
        assert await client.wait_connected(5)
    finally:
        await client.close()
    missing = EslSettings.model_validate({"port": port, "password_file": tmp_path / "absent.conf"})
    with pytest.raises(OSError):
        missing.current_password()
    client = EslClient(missing)
    client.start()
    try:
        assert not await client.wait_connected(0.5)  # unreadable: logged, retried, never the default password
    finally:
        await client.close()
        await switch.close()
