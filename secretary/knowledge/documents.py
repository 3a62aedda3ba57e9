"""What the knowledge base knows about each uploaded document, and the interface of the two stores that keep
it (PostgreSQL `v_ai_knowledge_documents` with a database, a JSON file per domain without one).

A store keeps the document's extracted text too: re-indexing (a new chunk size, a new embedder) works from
it without the original upload. Every method takes the `domain_uuid`: a document of another domain reads
exactly like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from pydantic import BaseModel

DocumentStatus = Literal["indexing", "indexed", "failed"]


class DocumentInfo(BaseModel):
    """One document of a domain's knowledge base. `status` is "indexed" once its passages are searchable,
    "failed" when indexing failed (`error` says why; `reindex` retries), "indexing" while it is added."""

    document_uuid: UUID
    domain_uuid: UUID
    filename: str
    content_type: str
    size_bytes: int
    chunk_count: int
    status: DocumentStatus
    error: str | None = None
    created_at: datetime


class DocumentStore(Protocol):
    async def insert(self, info: DocumentInfo, text: str, sha256: str) -> None: ...

    async def set_status(
        self, domain_uuid: UUID, document_uuid: UUID, status: DocumentStatus, chunk_count: int, error: str | None
    ) -> None: ...

    async def get(self, domain_uuid: UUID, document_uuid: UUID) -> DocumentInfo | None: ...

    async def text(self, domain_uuid: UUID, document_uuid: UUID) -> str | None: ...

    async def find_by_filename(self, domain_uuid: UUID, filename: str) -> list[DocumentInfo]: ...

    async def page(self, domain_uuid: UUID, offset: int, limit: int) -> list[DocumentInfo]:
        """Newest first."""
        ...

    async def all_uuids(self, domain_uuid: UUID) -> list[UUID]: ...

    async def delete(self, domain_uuid: UUID, document_uuid: UUID) -> bool: ...
