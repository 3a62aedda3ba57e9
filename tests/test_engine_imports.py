"""Every engine module imports on its own, before the registry: the engines and the registry share their types
through `bridge.engines.request`, not an import circle.

One fresh interpreter imports each module in turn with every project module forgotten before it (third-party
packages stay loaded: they are not ours to check, and re-importing them per module cost a second each), so a
circle among our modules shows exactly as it would in a process that imports that module first."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import bridge.engines

ENGINE_MODULES = sorted(f"bridge.engines.{m.name}" for m in pkgutil.iter_modules(bridge.engines.__path__))
ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("bridge", "secretary", "ivr_service", "freeswitch", "voiceai")

SCRIPT = """
import importlib, json, sys, traceback
ours = lambda name: name.split(".")[0] in {packages!r}
failures = {{}}
for module in {modules!r}:
    for name in [n for n in sys.modules if ours(n)]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
        if module != "bridge.engines.registry" and "bridge.engines.registry" in sys.modules:
            failures[module] = "the engine pulled in the registry"
    except Exception:
        failures[module] = traceback.format_exc()[-2000:]
print(json.dumps(failures))
"""


def test_the_listing_holds_the_engines() -> None:
    for name in ("registry", "request", "openai_realtime", "elevenlabs_convai", "gemini_live", "pipeline", "chain"):
        assert f"bridge.engines.{name}" in ENGINE_MODULES


def test_each_engine_module_imports_alone() -> None:
    script = SCRIPT.format(packages=PROJECT_PACKAGES, modules=ENGINE_MODULES)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {}


def test_a_circle_would_be_seen() -> None:
    """The check itself: two modules importing each other's names at import time fail when imported alone."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "voiceai_circle"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "a.py").write_text("from voiceai_circle.b import B\nA = 1\n")
        (package / "b.py").write_text("from voiceai_circle.a import A\nB = 2\n")
        script = SCRIPT.format(packages=("voiceai_circle",), modules=["voiceai_circle.a", "voiceai_circle.b"])
        done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=60)
    failures = json.loads(done.stdout.splitlines()[-1])
    assert set(failures) == {"voiceai_circle.a", "voiceai_circle.b"}
    assert all("ImportError" in failure for failure in failures.values())
