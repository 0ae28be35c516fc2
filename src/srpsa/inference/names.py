"""Output folder names for input images: safe and unique for any file name.

An image's results go to ``OUT/<name>/``. The name is the file's stem when that is a plain, safe
folder name; otherwise it is cleaned. Without this, ``...png`` (stem ``..``) wrote into the parent of
``--out`` and ``..png`` (stem ``.``) into ``--out`` itself. The rules:

- characters that are path separators, control characters or NUL become ``_``;
- leading dots are replaced by ``_`` (no ``.``, ``..`` or hidden folders), trailing dots and spaces too
  (Windows drops them); an empty name becomes ``_``;
- names of the batch files (``summary.csv``, ``errors.csv``, ``report.html``) and Windows device
  names are not used as such;
- names longer than 120 characters are cut;
- a cleaned name, or one that collides with another image's (case-insensitively, as on macOS and
  Windows), gets ``_`` and six hex digits of the sha1 of the resolved input path.

Ordinary stems (``img0``) are kept unchanged, so existing output folders keep their names.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_RESERVED = {"summary.csv", "errors.csv", "report.html", "con", "prn", "aux", "nul",
             *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
MAX_LEN = 120


def clean_stem(stem: str) -> str:
    """``stem`` made into a safe single folder name (see the module docstring); may equal ``stem``."""
    name = _UNSAFE.sub("_", stem)[:MAX_LEN]
    head = len(name) - len(name.lstrip("."))
    name = "_" * head + name[head:]
    tail = len(name) - len(name.rstrip(". "))
    name = name[: len(name) - tail] + "_" * tail
    return name or "_"


def _tag(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:6]


def safe_output_names(images: list[Path]) -> list[str]:
    """One output folder name per image, safe and unique within the list (see the module docstring)."""
    cleaned = [clean_stem(p.stem) for p in images]
    counts = Counter(c.lower() for c in cleaned)
    names = []
    for path, name in zip(images, cleaned):
        if name != path.stem or counts[name.lower()] > 1 or name.lower() in _RESERVED:
            name = f"{name}_{_tag(path)}"
        names.append(name)
    # Two different paths with the same cleaned name and the same 6-digit tag are astronomically
    # unlikely; a duplicate that remains (the same file given twice) is removed by iter_image_files.
    return names
