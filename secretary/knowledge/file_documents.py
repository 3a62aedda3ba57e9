"""Document metadata and text in files, the embedded default without PostgreSQL.

Each domain has its own folder, `<root>/<domain_uuid>/`, holding `documents.json` (the metadata) and one
`<document_uuid>.txt` per document: nothing of one domain sits in another's folder. Writes go to a temporary
file that replaces the old one, so a crash never leaves a half-written index; one process at a time writes
(the service, or the CLI while the service is stopped or idle).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from uuid import UUID

from secretary.knowledge.documents import DocumentInfo, DocumentStatus


def _write_atomically(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FileDocumentStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = asyncio.Lock()

    def _folder(self, domain_uuid: UUID) -> Path:
        return self._root / str(UUID(str(domain_uuid)))  # a UUID, never a path someone chose

    def _read(self, domain_uuid: UUID) -> list[DocumentInfo]:
        path = self._folder(domain_uuid) / "documents.json"
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [DocumentInfo.model_validate(e) for e in entries]

    def _write(self, domain_uuid: UUID, documents: list[DocumentInfo]) -> None:
        data = json.dumps([d.model_dump(mode="json") for d in documents], indent=1)
        _write_atomically(self._folder(domain_uuid) / "documents.json", data)

    async def _load(self, domain_uuid: UUID) -> list[DocumentInfo]:
        return await asyncio.to_thread(self._read, domain_uuid)

    async def insert(self, info: DocumentInfo, text: str, sha256: str) -> None:
        async with self._lock:
            text_path = self._folder(info.domain_uuid) / f"{info.document_uuid}.txt"
            await asyncio.to_thread(_write_atomically, text_path, text)
            documents = await self._load(info.domain_uuid)
            documents.append(info)
            await asyncio.to_thread(self._write, info.domain_uuid, documents)

    async def set_status(
        self, domain_uuid: UUID, document_uuid: UUID, status: DocumentStatus, chunk_count: int, error: str | None
    ) -> None:
        async with self._lock:
            documents = await self._load(domain_uuid)
            updated = [
                d.model_copy(update={"status": status, "chunk_count": chunk_count, "error": error})
                if d.document_uuid == document_uuid
                else d
                for d in documents
            ]
            await asyncio.to_thread(self._write, domain_uuid, updated)

    async def get(self, domain_uuid: UUID, document_uuid: UUID) -> DocumentInfo | None:
        return next((d for d in await self._load(domain_uuid) if d.document_uuid == document_uuid), None)

    async def text(self, domain_uuid: UUID, document_uuid: UUID) -> str | None:
        if await self.get(domain_uuid, document_uuid) is None:
            return None
        path = self._folder(domain_uuid) / f"{UUID(str(document_uuid))}.txt"
        try:
            return await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return None

    async def find_by_filename(self, domain_uuid: UUID, filename: str) -> list[DocumentInfo]:
        return [d for d in await self._load(domain_uuid) if d.filename == filename]

    async def page(self, domain_uuid: UUID, offset: int, limit: int) -> list[DocumentInfo]:
        documents = sorted(
            await self._load(domain_uuid), key=lambda d: (d.created_at, str(d.document_uuid)), reverse=True
        )
        return documents[offset : offset + limit]

    async def all_uuids(self, domain_uuid: UUID) -> list[UUID]:
        return [d.document_uuid for d in sorted(await self._load(domain_uuid), key=lambda d: d.created_at)]

    async def delete(self, domain_uuid: UUID, document_uuid: UUID) -> bool:
        async with self._lock:
            documents = await self._load(domain_uuid)
            kept = [d for d in documents if d.document_uuid != document_uuid]
            if len(kept) == len(documents):
                return False
            await asyncio.to_thread(self._write, domain_uuid, kept)
            text_path = self._folder(domain_uuid) / f"{UUID(str(document_uuid))}.txt"
            await asyncio.to_thread(text_path.unlink, missing_ok=True)
            return True
