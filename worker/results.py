"""Build the DocumentResult from recognized pages and write result.json/.md/.txt atomically."""

from __future__ import annotations

from shared.results import Block, DocumentResult, PageResult
from shared.storage import JobFiles

PAGE_SEPARATOR_TEXT = "\f"


def page_markdown(blocks: list[Block]) -> str:
    """Markdown for an engine without layout analysis: one paragraph per text line."""
    return "\n\n".join(b.text for b in blocks if b.text.strip())


def build_document(job_id: str, engine: str, pages: list[PageResult]) -> DocumentResult:
    markdown = "\n\n".join(f"<!-- page {p.index} -->\n\n{p.markdown}".rstrip() for p in pages)
    text = PAGE_SEPARATOR_TEXT.join(p.text for p in pages)
    return DocumentResult(job_id=job_id, engine=engine, pages=pages, text=text, markdown=markdown)


def write_results(files: JobFiles, document: DocumentResult) -> None:
    """json last: its presence means the others are complete too."""
    files.write_result("markdown", (document.markdown + "\n").encode())
    files.write_result("text", (document.text + "\n").encode())
    files.write_result("json", document.model_dump_json().encode())
