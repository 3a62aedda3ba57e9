"""Every engine module imports on its own, in a fresh interpreter, before the registry: the engines and the
registry share their types through `bridge.engines.request`, not an import circle."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bridge.engines

ENGINE_MODULES = sorted(f"bridge.engines.{m.name}" for m in pkgutil.iter_modules(bridge.engines.__path__))
ROOT = Path(__file__).resolve().parent.parent


def test_the_listing_holds_the_engines() -> None:
    for name in ("registry", "request", "openai_realtime", "elevenlabs_convai", "gemini_live", "pipeline", "chain"):
        assert f"bridge.engines.{name}" in ENGINE_MODULES


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    script = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "assert 'bridge.engines.registry' not in sys.modules or "
        f"{module!r} == 'bridge.engines.registry', 'the engine pulled in the registry'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
