"""`voiceai kb add | list | remove | search | reindex`: a domain's knowledge base from the command line.

`<domain>` is a domain name or its uuid, resolved through the secretaries store (PostgreSQL or YAML, as the
service would). The CLI writes where the service reads (the same database, Chroma server or data_dir).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from tqdm import tqdm

from secretary.errors import BadInput, SecretaryError
from secretary.knowledge.documents import DocumentInfo
from secretary.settings import Settings
from secretary.tenants.store import lookup

if TYPE_CHECKING:
    from secretary.runtime import Runtime


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    kb = sub.add_parser("kb", help="manage a domain's knowledge base (documents the secretary answers from)")
    actions = kb.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="index documents (txt, md, html, pdf); a file name already there is replaced")
    add.add_argument("domain", help="domain name or uuid")
    add.add_argument("files", nargs="+", type=Path)
    listing = actions.add_parser("list", help="list a domain's documents, newest first")
    listing.add_argument("domain")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=100)
    remove = actions.add_parser("remove", help="delete a document and its passages")
    remove.add_argument("domain")
    remove.add_argument("document_uuid")
    search = actions.add_parser("search", help="show the passages a caller's question would bring up")
    search.add_argument("domain")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=4)
    reindex = actions.add_parser("reindex", help="cut and embed again (one document, or the whole domain)")
    reindex.add_argument("domain")
    reindex.add_argument("document_uuid", nargs="?")
    return kb


async def _domain_uuid(runtime: Runtime, reference: str) -> UUID:
    try:
        return UUID(reference)
    except ValueError:
        return (await lookup(runtime.secretaries, None, reference)).domain_uuid


def _document_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise BadInput(f"{value!r} is not a document uuid (see `voiceai kb list`)", field="document_uuid") from None


def _row(info: DocumentInfo) -> str:
    created = info.created_at.strftime("%Y-%m-%d %H:%M")
    return (
        f"{info.document_uuid}  {info.status:<8} {info.chunk_count:>6}  {info.size_bytes:>10}  {created}  "
        f"{info.filename}" + (f"  ({info.error})" if info.error else "")
    )


async def _add(runtime: Runtime, domain: UUID, files: list[Path]) -> int:
    problems = 0
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            print(f"refused  {path}: {exc.strerror or exc}", file=sys.stderr)
            problems += 1
            continue
        with tqdm(desc=path.name, unit="passage", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:

            def progress(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                info = await runtime.knowledge.add_document(domain, path.name, content, on_progress=progress)
            except SecretaryError as exc:
                bar.close()
                print(f"refused  {path}: {exc.message}", file=sys.stderr)
                problems += 1
                continue
        if info.status == "indexed":
            print(f"indexed  {info.filename}: {info.chunk_count} passage(s)  {info.document_uuid}")
        else:
            print(f"FAILED   {info.filename}: {info.error} (kept: run `voiceai kb reindex`)", file=sys.stderr)
            problems += 1
    return 1 if problems else 0


async def run_kb(settings: Settings, args: argparse.Namespace) -> int:
    from secretary.runtime import Runtime  # chromadb and the engines load only for a kb command

    runtime = Runtime.create(settings)
    try:
        domain = await _domain_uuid(runtime, args.domain)
        kb = runtime.knowledge
        if args.action in ("add", "remove", "reindex"):
            await kb.index.count(domain)  # fails now, clearly, if the index can't be written (e.g. held by the service)
        if args.action == "add":
            return await _add(runtime, domain, args.files)
        if args.action == "list":
            documents = await kb.list_documents(domain, args.offset, args.limit)
            if not documents:
                print("no documents")
            for info in documents:
                print(_row(info))
            return 0
        if args.action == "remove":
            if await kb.delete_document(domain, _document_uuid(args.document_uuid)):
                print(f"removed {args.document_uuid}")
                return 0
            print(f"no document {args.document_uuid} in this domain", file=sys.stderr)
            return 1
        if args.action == "reindex":
            document = _document_uuid(args.document_uuid) if args.document_uuid else None
            print(f"indexed {await kb.reindex(domain, document)} passage(s)")
            return 0
        hits = await kb.search(str(domain), " ".join(args.query), args.limit)
        if not hits:
            print("nothing found (the domain has no documents)")
        for hit in hits:
            print(f"{hit.score:.3f}  [{hit.source}]  {hit.text}")
            if hit.answer:
                print(f"       answer: {hit.answer}")
        return 0
    except SecretaryError as exc:
        print(f"voiceai kb: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await runtime.close()
