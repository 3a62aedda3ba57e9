"""Knowledge documents of a domain: upload (multipart `file`, or the raw document with `?filename=`),
list, one, delete, re-index, and ask (what the secretary would answer, and from which passage). The upload
is streamed against the size limit, so a 200 MB body is refused after at most the limit is read, never
buffered whole."""

from __future__ import annotations

from uuid import UUID

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ivr_service.admin.context import AdminRequest, PayloadTooLarge, model_response, read_limited
from ivr_service.admin.models import (
    AskBody,
    AskOut,
    Deleted,
    DocumentOut,
    Page,
    Paging,
    Passage,
    ReindexOut,
    UploadQuery,
)
from ivr_service.admin.registry import Operation
from secretary.errors import BadInput, NotFound
from secretary.knowledge import grounding
from secretary.knowledge.base import KnowledgeBase


def _knowledge(admin: AdminRequest) -> KnowledgeBase:
    return admin.services.runtime.knowledge


def _document_uuid(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise BadInput("document_uuid is not a UUID", field="document_uuid", code="invalid_field") from None


async def _read_upload(admin: AdminRequest) -> tuple[str, bytes, str | None]:
    request, limit = admin.request, admin.settings.max_upload_bytes
    if request.content_type == "multipart/form-data":
        try:
            return await _read_file_part(request, limit)
        except KeyError:  # aiohttp's reader looks the boundary up in the Content-Type
            raise BadInput("the multipart Content-Type has no boundary", field="file", code="invalid_field") from None
        except (ValueError, HttpProcessingError):  # a boundary line or a part header that is wrong or too long
            raise BadInput(
                "file: the multipart body is malformed (its boundaries or a part's headers)",
                field="file",
                code="invalid_field",
            ) from None
    query = admin.query(UploadQuery)
    if not query.filename:
        raise BadInput(
            "filename: required when the document is sent as the raw body", field="filename", code="missing_field"
        )
    content = await read_limited(request, limit, "file")
    return query.filename, content, request.content_type or None


async def _read_file_part(request: web.Request, limit: int) -> tuple[str, bytes, str | None]:
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        filename = part.filename or ""
        if not filename:
            raise BadInput("file: the part needs a filename", field="file", code="missing_field")
        chunks, size = [], 0
        while chunk := await part.read_chunk(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit, "file")
            chunks.append(chunk)
        return filename, b"".join(chunks), part.headers.get("Content-Type")
    raise BadInput("file: a multipart part named 'file' is required", field="file", code="missing_field")


async def upload_document(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    limit = admin.settings.max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise PayloadTooLarge(limit, "file")  # refused before a byte of the body is read
    knowledge = _knowledge(admin)
    filename, content, content_type = await _read_upload(admin)
    if not content:
        raise BadInput("file: the document is empty", field="file", code="bad_document")
    info = await knowledge.add_document(domain.domain_uuid, filename, content, content_type)
    return model_response(DocumentOut.model_validate(info), status=201)


async def list_documents(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    paging = admin.query(Paging)
    found = await _knowledge(admin).list_documents(domain.domain_uuid, paging.offset, paging.limit + 1)
    return model_response(Page[DocumentOut].of([DocumentOut.model_validate(d) for d in found], paging))


async def get_document(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    document_uuid = _document_uuid(request.match_info["document_uuid"])
    info = await _knowledge(admin).get_document(domain.domain_uuid, document_uuid)
    if info is None:
        raise NotFound(f"unknown document {document_uuid}")
    return model_response(DocumentOut.model_validate(info))


async def delete_document(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    document_uuid = _document_uuid(request.match_info["document_uuid"])
    if not await _knowledge(admin).delete_document(domain.domain_uuid, document_uuid):
        raise NotFound(f"unknown document {document_uuid}")
    return model_response(Deleted())


async def reindex_document(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    document_uuid = _document_uuid(request.match_info["document_uuid"])
    knowledge = _knowledge(admin)
    if await knowledge.get_document(domain.domain_uuid, document_uuid) is None:
        raise NotFound(f"unknown document {document_uuid}")
    return model_response(ReindexOut(chunks_indexed=await knowledge.reindex(domain.domain_uuid, document_uuid)))


async def reindex_documents(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    return model_response(ReindexOut(chunks_indexed=await _knowledge(admin).reindex(domain.domain_uuid)))


async def ask_knowledge(request: web.Request, admin: AdminRequest) -> web.StreamResponse:
    domain = await admin.domain()
    body = await admin.body(AskBody)
    chunks = await _knowledge(admin).search(str(domain.domain_uuid), body.question)
    config = await admin.services.secretaries.admin_get(domain.domain_uuid)
    # the front desk's own check: what a caller asking this would hear, and from which passage
    found = grounding.answer(body.question, chunks, config.language if config else "en")
    return model_response(
        AskOut(
            answer=found.say if found else None,
            answered_from=Passage(text=found.chunk.text, source=found.chunk.source, score=found.chunk.score)
            if found
            else None,
            passages=[Passage(text=c.text, source=c.source, score=c.score) for c in chunks],
        )
    )


OPERATIONS = [
    Operation(
        "GET",
        "/domains/{domain}/documents",
        list_documents,
        "Knowledge documents",
        "knowledge",
        query=Paging,
        response=Page[DocumentOut],
        errors=(400, 401, 404, 503),
    ),
    Operation(
        "POST",
        "/domains/{domain}/documents",
        upload_document,
        "Upload a document (txt, md, html, pdf): multipart field `file`, or the raw body with ?filename=",
        "knowledge",
        query=UploadQuery,
        upload=True,
        response=DocumentOut,
        status=201,
        errors=(400, 401, 404, 413, 415, 422, 429, 503),
    ),
    Operation(
        "GET",
        "/domains/{domain}/documents/{document_uuid}",
        get_document,
        "One document",
        "knowledge",
        response=DocumentOut,
        errors=(400, 401, 404, 503),
    ),
    Operation(
        "DELETE",
        "/domains/{domain}/documents/{document_uuid}",
        delete_document,
        "Remove a document and its chunks",
        "knowledge",
        response=Deleted,
        errors=(400, 401, 404, 503),
    ),
    Operation(
        "POST",
        "/domains/{domain}/documents/{document_uuid}/reindex",
        reindex_document,
        "Chunk and embed one document again",
        "knowledge",
        response=ReindexOut,
        errors=(400, 401, 404, 422, 429, 503),
    ),
    Operation(
        "POST",
        "/domains/{domain}/documents/reindex",
        reindex_documents,
        "Chunk and embed all the domain's documents again",
        "knowledge",
        response=ReindexOut,
        errors=(400, 401, 404, 422, 429, 503),
    ),
    Operation(
        "POST",
        "/domains/{domain}/knowledge/ask",
        ask_knowledge,
        "What the secretary would answer a question from the knowledge base, and from which passage",
        "knowledge",
        body=AskBody,
        response=AskOut,
        errors=(400, 401, 404, 413, 503),
    ),
]
