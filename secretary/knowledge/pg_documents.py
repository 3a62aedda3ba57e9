"""Document metadata and text in the FusionPBX PostgreSQL (`v_ai_knowledge_documents`, migration 0002)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from secretary.db.database import Database
from secretary.knowledge.documents import DocumentInfo, DocumentStatus

_COLUMNS = """ai_knowledge_document_uuid, domain_uuid, document_filename, document_content_type,
    document_size_bytes, document_chunk_count, document_status, document_error, insert_date"""
# Every statement names the domain as well as the document: another domain's document is never touched.
_ONE = "domain_uuid = $1 AND ai_knowledge_document_uuid = $2"


def _info(row: asyncpg.Record) -> DocumentInfo:
    return DocumentInfo(
        document_uuid=row["ai_knowledge_document_uuid"],
        domain_uuid=row["domain_uuid"],
        filename=row["document_filename"],
        content_type=row["document_content_type"],
        size_bytes=row["document_size_bytes"],
        chunk_count=row["document_chunk_count"],
        status=row["document_status"],
        error=row["document_error"],
        created_at=row["insert_date"],
    )


class PostgresDocumentStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(self, info: DocumentInfo, text: str, sha256: str) -> None:
        await self._db.execute(
            """INSERT INTO v_ai_knowledge_documents (ai_knowledge_document_uuid, domain_uuid, document_filename,
                   document_content_type, document_size_bytes, document_chunk_count, document_status,
                   document_error, document_text, document_sha256, insert_date)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            info.document_uuid,
            info.domain_uuid,
            info.filename,
            info.content_type,
            info.size_bytes,
            info.chunk_count,
            info.status,
            info.error,
            text,
            sha256,
            info.created_at,
        )

    async def set_status(
        self, domain_uuid: UUID, document_uuid: UUID, status: DocumentStatus, chunk_count: int, error: str | None
    ) -> None:
        await self._db.execute(
            f"""UPDATE v_ai_knowledge_documents
               SET document_status = $3, document_chunk_count = $4, document_error = $5, update_date = now()
               WHERE {_ONE}""",
            domain_uuid,
            document_uuid,
            status,
            chunk_count,
            error,
        )

    async def get(self, domain_uuid: UUID, document_uuid: UUID) -> DocumentInfo | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM v_ai_knowledge_documents WHERE {_ONE}",
            domain_uuid,
            document_uuid,
        )
        return None if row is None else _info(row)

    async def text(self, domain_uuid: UUID, document_uuid: UUID) -> str | None:
        row = await self._db.fetchrow(
            f"SELECT document_text FROM v_ai_knowledge_documents WHERE {_ONE}",
            domain_uuid,
            document_uuid,
        )
        return None if row is None else str(row["document_text"])

    async def find_by_filename(self, domain_uuid: UUID, filename: str) -> list[DocumentInfo]:
        rows = await self._db.fetch(
            f"""SELECT {_COLUMNS} FROM v_ai_knowledge_documents
                WHERE domain_uuid = $1 AND document_filename = $2 ORDER BY insert_date""",
            domain_uuid,
            filename,
        )
        return [_info(r) for r in rows]

    async def page(self, domain_uuid: UUID, offset: int, limit: int) -> list[DocumentInfo]:
        rows = await self._db.fetch(
            f"""SELECT {_COLUMNS} FROM v_ai_knowledge_documents WHERE domain_uuid = $1
                ORDER BY insert_date DESC, ai_knowledge_document_uuid DESC OFFSET $2 LIMIT $3""",
            domain_uuid,
            offset,
            limit,
        )
        return [_info(r) for r in rows]

    async def all_uuids(self, domain_uuid: UUID) -> list[UUID]:
        rows = await self._db.fetch(
            """SELECT ai_knowledge_document_uuid FROM v_ai_knowledge_documents
               WHERE domain_uuid = $1 ORDER BY insert_date""",
            domain_uuid,
        )
        return [r["ai_knowledge_document_uuid"] for r in rows]

    async def delete(self, domain_uuid: UUID, document_uuid: UUID) -> bool:
        status = await self._db.execute(
            f"DELETE FROM v_ai_knowledge_documents WHERE {_ONE}",
            domain_uuid,
            document_uuid,
        )
        return status.endswith(" 1")
