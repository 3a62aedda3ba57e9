"""Text extraction per format, and the bad documents: fake PDFs, scripts in HTML, binaries, unknown types."""

from __future__ import annotations

import pytest

from secretary.errors import BadInput
from secretary.knowledge.extraction import (
    HTML,
    MARKDOWN,
    PDF,
    TEXT,
    ExtractedDocument,
    clean_filename,
    extract,
    resolve_content_type,
)
from tests.support.pdf import build_pdf


def test_plain_text_joins_wrapped_lines_and_keeps_paragraphs() -> None:
    doc = extract("notes.txt", b"Opening hours are\nnine to five.\r\n\r\nParking  is\tfree.\n", TEXT)
    assert doc.sections[0].text == "Opening hours are nine to five.\n\nParking is free."


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Café crème".encode("utf-8-sig"), "Café crème"),
        ("Café crème".encode("utf-16"), "Café crème"),
        ("Café crème".encode("cp1252"), "Café crème"),
    ],
)
def test_text_encodings(content: bytes, expected: str) -> None:
    assert extract("menu.txt", content, TEXT).sections[0].text == expected


def test_a_binary_file_is_not_text() -> None:
    with pytest.raises(BadInput) as caught:
        extract("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), TEXT)
    assert caught.value.code == "bad_document"
    assert "photo.txt" in caught.value.message


def test_empty_and_blank_documents_are_refused() -> None:
    for content in (b"", b"  \n\t\n"):
        with pytest.raises(BadInput) as caught:
            extract("empty.txt", content, TEXT)
        assert caught.value.code == "bad_document"


HTML_PAGE = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html><head><title>Title text</title><meta charset="utf-8">
<style>p { color: red } /* STYLE-LEAK */</style>
<script>var token = "SCRIPT-LEAK-HEAD";</script></head>
<body onload="alert('ATTRIBUTE-LEAK')">
<h1>Returns &amp; refunds</h1>
<!-- COMMENT-LEAK -->
<p>We accept returns within <b>30 days</b>.<br>Bring the receipt.</p>
<script type="text/javascript">document.write("SCRIPT-LEAK-BODY")</script>text after a script
<noscript>NOSCRIPT-LEAK</noscript><template><p>TEMPLATE-LEAK</p></template>
<iframe src="x">IFRAME-LEAK</iframe><svg><text>SVG-LEAK</text></svg>
<ul><li>Free parking</li><li>Caf\xc3\xa9 on site</li></ul>
<table><tr><th>Day</th><th>Hours</th></tr><tr><td>Sat</td><td>10-2</td></tr></table>
</body></html>"""


def test_html_keeps_the_reader_text_and_drops_scripts_styles_and_comments() -> None:
    text = extract("page.html", HTML_PAGE, HTML).sections[0].text
    assert "LEAK" not in text
    assert "Title text" not in text  # <head> is not content
    assert text.split("\n\n") == [
        "# Returns & refunds",
        "We accept returns within 30 days. Bring the receipt.",
        "text after a script",
        "Free parking",
        "Café on site",
        "Day Hours",
        "Sat 10-2",
    ]


def test_html_charset_from_meta_and_from_fallback() -> None:
    latin = '<html><head><meta charset="iso-8859-1"></head><body><p>Müller</p></body></html>'.encode("latin-1")
    assert extract("a.html", latin, HTML).sections[0].text == "Müller"
    no_meta = "<p>Zürich</p>".encode()
    assert extract("b.html", no_meta, HTML).sections[0].text == "Zürich"


def test_html_with_only_scripts_has_no_readable_text() -> None:
    with pytest.raises(BadInput) as caught:
        extract("x.html", b"<html><script>alert(1)</script><style>a{}</style></html>", HTML)
    assert caught.value.code == "bad_document"


MARKDOWN_DOC = """---
title: front matter is metadata
---
# Opening hours

We are open *Monday* to **Friday**,
from 9 to 5. See [our page](http://example.com/hours).

- Parking is free
- Wi-Fi: ask at the desk

<script>evil("SCRIPT-LEAK")</script>

| Day | Hours |
|-----|-------|
| Sat | 10-2 |
"""


def test_markdown_is_read_like_its_html() -> None:
    text = extract("guide.md", MARKDOWN_DOC.encode(), MARKDOWN).sections[0].text
    assert "LEAK" not in text and "front matter" not in text and "http" not in text
    assert text.split("\n\n") == [
        "# Opening hours",
        "We are open Monday to Friday, from 9 to 5. See our page.",
        "Parking is free",
        "Wi-Fi: ask at the desk",
        "Day Hours",
        "Sat 10-2",
    ]


def test_a_real_pdf_gives_one_section_per_page() -> None:
    pdf = build_pdf([["Price list (2025)", "Anvils cost 120 dollars each."], ["Rocket skates cost 300 dollars."]])
    doc = extract("prices.pdf", pdf, PDF)
    assert [(s.page, s.text) for s in doc.sections] == [
        (1, "Price list (2025) Anvils cost 120 dollars each."),
        (2, "Rocket skates cost 300 dollars."),
    ]
    assert ExtractedDocument.from_stored_text(PDF, doc.stored_text()) == doc  # pages survive re-indexing


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"Just some text that someone named .pdf", "not a PDF"),
        (b"<html><body>a web page saved as pdf</body></html>", "not a PDF"),
        (build_pdf([["Half a file"]])[:150], "can't be read"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 20, "can't be read"),
        (build_pdf([["scan"]], text=False), "no text layer"),
    ],
    ids=["text", "html", "truncated", "garbage-after-header", "no-text-layer"],
)
def test_a_pdf_that_is_not_a_readable_pdf_is_refused(content: bytes, reason: str) -> None:
    with pytest.raises(BadInput) as caught:
        extract("brochure.pdf", content, PDF)
    assert caught.value.code == "bad_document"
    assert reason in caught.value.message
    assert caught.value.message.startswith("brochure.pdf:")


@pytest.mark.parametrize(
    ("filename", "declared", "expected"),
    [
        ("notes.txt", None, TEXT),
        ("guide.MD", "", MARKDOWN),
        ("page.htm", "application/octet-stream", HTML),
        ("x", "text/html; charset=utf-8", HTML),
        ("brochure", "application/pdf", PDF),
        ("readme.markdown", "text/plain", TEXT),  # a declared supported type wins
        ("readme.md", "text/x-unknown", MARKDOWN),
    ],
)
def test_content_type_from_declaration_or_extension(filename: str, declared: str | None, expected: str) -> None:
    assert resolve_content_type(filename, declared) == expected


@pytest.mark.parametrize(
    ("filename", "declared"),
    [("report.docx", None), ("photo.png", "image/png"), ("noextension", None), ("notes.txt", "image/png")],
)
def test_unsupported_types_are_refused(filename: str, declared: str | None) -> None:
    with pytest.raises(BadInput) as caught:
        resolve_content_type(filename, declared)
    assert caught.value.code == "unsupported_document"


def test_filenames_lose_their_directories_and_control_characters() -> None:
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\Users\\admin\\price list.pdf") == "price list.pdf"
    assert clean_filename("bad\x00name\n.txt") == "badname.txt"
    for nameless in ("", "../", "..", " \t"):
        with pytest.raises(BadInput) as caught:
            clean_filename(nameless)
        assert caught.value.field == "filename"
