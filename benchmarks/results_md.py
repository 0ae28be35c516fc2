"""Replace one generated section of benchmarks/RESULTS.md (between HTML-comment markers), atomically."""

from __future__ import annotations

from pathlib import Path

from srpsa.io.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Put ``markdown`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (appended if absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8")
    block = f"{begin}\n{markdown}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(path, text)
