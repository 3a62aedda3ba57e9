"""`voiceai kb …` as an admin runs it: the real CLI entry point, the embedded stores, the real embedder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.conftest import EXAMPLE_SECRETARIES
from voiceai.cli import main

DOCUMENTS = Path(__file__).parent / "data" / "knowledge"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures logging for the process (onto the stderr pytest captures); later tests log too."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def embedded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads its settings like the service: from the environment (here: files only, no servers)."""
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "VOICEAI_DATABASE_URL",
        "VOICEAI_REDIS_URL",
        "VOICEAI_KNOWLEDGE__CHROMA_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOICEAI_CONFIG", str(tmp_path / "no-config.yaml"))
    monkeypatch.setenv("VOICEAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VOICEAI_SECRETARIES_FILE", str(EXAMPLE_SECRETARIES))


def test_add_list_search_remove(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"not a pdf at all")
    files = [str(DOCUMENTS / "acme-customer-guide.md"), str(DOCUMENTS / "acme-safety.txt"), str(broken)]
    assert main(["kb", "add", "acme.example.com", *files]) == 1  # one file refused
    out, err = capsys.readouterr()
    indexed = [line.split() for line in out.splitlines()]
    assert [(row[0], row[1]) for row in indexed] == [
        ("indexed", "acme-customer-guide.md:"),
        ("indexed", "acme-safety.txt:"),
    ]
    assert "refused" in err and "broken.pdf: this is not a PDF file" in err
    assert "6/6" in err  # the progress bar reached the end

    assert main(["kb", "list", "d0000000-0001-4000-8000-000000000001"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row.split()[-1] for row in rows] == ["acme-safety.txt", "acme-customer-guide.md"]
    guide_uuid = rows[1].split()[0]

    assert main(["kb", "search", "acme.example.com", "Do", "you", "deliver", "to", "Mexico?"]) == 0
    out = capsys.readouterr().out
    assert "[acme-customer-guide.md: Shipping]" in out.splitlines()[0]
    assert "answer: We ship to the United States, Canada and Mexico." in out

    assert main(["kb", "remove", "acme.example.com", guide_uuid]) == 0
    assert main(["kb", "remove", "acme.example.com", guide_uuid]) == 1
    assert main(["kb", "remove", "acme.example.com", "not-a-uuid"]) == 1
    assert "not a document uuid" in capsys.readouterr().err
    assert main(["kb", "reindex", "acme.example.com"]) == 0
    assert capsys.readouterr().out.strip() == "indexed 1 passage(s)"


def test_an_unknown_domain_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kb", "add", "nowhere.example.com", str(DOCUMENTS / "acme-safety.txt")]) == 1
    assert "unknown domain 'nowhere.example.com'" in capsys.readouterr().err


def test_the_embedded_index_is_one_process_at_a_time(tmp_path: Path) -> None:
    """Embedded Chroma can't see another process's writes: while the service holds the index, the CLI (a
    second process) is refused with a way out, and works once the service is gone."""
    import asyncio
    import os
    import subprocess
    import sys

    from secretary.runtime import Runtime
    from secretary.settings import Settings

    command = [sys.executable, "-m", "voiceai", "kb", "add", "acme.example.com", str(DOCUMENTS / "acme-safety.txt")]
    service = Runtime.create(Settings())  # the settings of the environment above, like the CLI's
    try:
        assert asyncio.run(service.knowledge.ping())
        refused = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
        assert refused.returncode == 1
        assert "is open in another process (the running service?)" in refused.stderr
        assert "knowledge.chroma_url" in refused.stderr
    finally:
        asyncio.run(service.close())
    accepted = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("indexed  acme-safety.txt: 1 passage(s)")
