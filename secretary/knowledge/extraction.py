"""Plain text out of an uploaded document (txt, md, html, pdf), as paragraphs a secretary could read aloud.

Anything that is not meant for a reader never reaches the index: scripts, styles, templates, embedded
objects and comments of HTML (and of HTML inside Markdown). PDFs are checked to be PDFs before parsing,
and any parser failure is a `BadInput` naming the document, never a crash.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import lxml.etree
import lxml.html
from markdown_it import MarkdownIt

from secretary.errors import BadInput

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
SUPPORTED = (TEXT, MARKDOWN, HTML, PDF)
PAGE_BREAK = "\f"
HEADING_MARK = "# "  # starts a paragraph that is a heading (of HTML or Markdown): the chunker keeps it apart

_BY_EXTENSION = {
    ".txt": TEXT,
    ".text": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".pdf": PDF,
}
_ALIASES = {"text/x-markdown": MARKDOWN, "application/xhtml+xml": HTML, "application/x-pdf": PDF}
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}

# Elements whose content is code, layout or media, not text for a reader.
_HIDDEN = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas", "head", "button")
_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt", "fieldset"),
        *("figcaption", "figure", "footer", "form", "header", "hr", "li"),
        *("main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul"),
        *("body", "html"),
    }
)
_CELLS = frozenset({"td", "th"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SPACES = re.compile(r"[ \t\f\v\u00a0\u200b]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # PostgreSQL text can't hold NUL; none is readable
_MAX_PDF_PAGES = 2000

logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns on every slightly odd PDF


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text; `page` is the 1-based PDF page it came from (None for other formats).
    Paragraphs inside `text` are separated by blank lines; a heading's paragraph starts with `HEADING_MARK`."""

    text: str
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    content_type: str
    sections: tuple[Section, ...]

    def stored_text(self) -> str:
        """One string to keep and re-index from: PDF pages are joined by form feeds (no page text has one)."""
        return PAGE_BREAK.join(s.text for s in self.sections)

    @classmethod
    def from_stored_text(cls, content_type: str, text: str) -> ExtractedDocument:
        if content_type == PDF:
            return cls(content_type, tuple(Section(t, page=n) for n, t in enumerate(text.split(PAGE_BREAK), start=1)))
        return cls(content_type, (Section(text),))


def clean_filename(filename: str) -> str:
    """The bare file name an admin sees in lists: no directories, no control characters."""
    name = PureWindowsPath(PurePosixPath(filename or "").name).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name.strip("."):
        raise BadInput("the document needs a file name", field="filename")
    return name[:255]


def resolve_content_type(filename: str, content_type: str | None) -> str:
    declared = (content_type or "").split(";")[0].strip().lower()
    declared = _ALIASES.get(declared, declared)
    if declared in SUPPORTED:
        return declared
    by_extension = _BY_EXTENSION.get(PurePosixPath(filename.lower()).suffix)
    if declared not in _GENERIC and not (declared.startswith("text/") and by_extension):
        raise BadInput(
            f"{filename}: unsupported document type {declared!r}; upload txt, md, html or pdf",
            field="content_type",
            code="unsupported_document",
        )
    if by_extension is None:
        raise BadInput(
            f"{filename}: unsupported document type; upload txt, md, html or pdf",
            field="filename",
            code="unsupported_document",
        )
    return by_extension


def extract(filename: str, content: bytes, content_type: str) -> ExtractedDocument:
    """CPU-bound (PDF parsing): run it in the `CpuPool`. Raises `BadInput` with code `bad_document`."""
    if not content.strip():
        raise _bad(filename, "the document is empty")
    if content_type == PDF:
        sections = _pdf_sections(filename, content)
    elif content_type == HTML:
        sections = (Section(html_text(content)),)
    elif content_type == MARKDOWN:
        sections = (Section(markdown_text(_decode(filename, content))),)
    else:
        sections = (Section(plain_text(_decode(filename, content))),)
    if not any(s.text for s in sections):
        raise _bad(filename, "the document has no readable text")
    return ExtractedDocument(content_type, sections)


def _bad(filename: str, reason: str) -> BadInput:
    return BadInput(f"{filename}: {reason}", field="content", code="bad_document")


def _decode(filename: str, content: bytes) -> str:
    if b"\x00" in content[:8192] and not content.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _bad(filename, "this is a binary file, not text")
    for encoding in ("utf-8-sig", "utf-16") if content.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig",):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    return content.decode("cp1252", errors="replace")  # old Windows documents; never fails


def _paragraphs(lines: Iterator[str] | list[str]) -> str:
    """Blank-line-separated paragraphs with single spaces: hard-wrapped lines are joined back."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        line = _SPACES.sub(" ", _CONTROL.sub("", line)).strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def plain_text(text: str) -> str:
    return _paragraphs(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def html_text(content: bytes | str) -> str:
    text = content if isinstance(content, str) else _decode_html(content)
    try:
        root = lxml.html.document_fromstring(_XML_DECLARATION.sub("", text, count=1))
    except (lxml.etree.ParserError, ValueError):
        return ""
    for element in list(root.iter(lxml.etree.Comment, lxml.etree.ProcessingInstruction, *_HIDDEN)):
        element.drop_tree()  # keeps the text that follows the element
    parts: list[str] = []
    _walk(root, parts)
    return _paragraphs("".join(parts).split("\n"))


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def _decode_html(content: bytes) -> str:
    """Honour a BOM or a usable <meta charset>; else UTF-8, else Windows-1252 (what browsers fall back to)."""
    if content.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return content.decode("utf-16" if not content.startswith(b"\xef") else "utf-8-sig", errors="replace")
    match = _META_CHARSET.search(content[:4096])
    if match:
        try:
            return content.decode(match.group(1).decode("ascii"), errors="replace")
        except (LookupError, UnicodeError):  # unknown, or a codec that isn't a page's (idna, undefined): ignored
            pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _walk(element: lxml.html.HtmlElement, parts: list[str]) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    block = tag in _BLOCKS or tag in _HEADINGS
    if block:
        parts.append("\n\n")
    if tag in _HEADINGS:
        parts.append(HEADING_MARK)
    if tag == "br":
        parts.append("\n")
    if element.text and tag:
        parts.append(element.text)
    for child in element:
        _walk(child, parts)
        if child.tail:
            parts.append(child.tail)
    if tag in _CELLS:
        parts.append(" ")
    if block:
        parts.append("\n\n")


_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.DOTALL)


def markdown_text(text: str) -> str:
    """Markdown is rendered to HTML and read like HTML, so raw HTML inside it is cleaned the same way."""
    return html_text("<html><body>" + _MARKDOWN.render(_FRONT_MATTER.sub("", text)) + "</body></html>")


def _pdf_sections(filename: str, content: bytes) -> tuple[Section, ...]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not content.lstrip()[:1024].startswith(b"%PDF-"):
        raise _bad(filename, "this is not a PDF file")
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _bad(filename, "the PDF is password-protected")
        if len(reader.pages) > _MAX_PDF_PAGES:
            raise _bad(filename, f"the PDF has more than {_MAX_PDF_PAGES} pages")
        sections = [
            Section(plain_text(page.extract_text() or ""), page=number)
            for number, page in enumerate(reader.pages, start=1)
        ]
    except BadInput:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError) as exc:
        # pypdf raises plain Python errors on many malformed files, not only its own.
        raise _bad(filename, f"the PDF can't be read ({type(exc).__name__})") from exc
    if not any(s.text for s in sections):
        raise _bad(filename, "the PDF has no text layer (a scan?); run OCR on it first")
    return tuple(sections)
