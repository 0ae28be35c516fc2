"""Finding input files and checking that a path names a readable, non-empty file."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from srpsa.errors import InputError

log = logging.getLogger(__name__)

#: Image suffixes :func:`srpsa.io.read_image` understands (compared case-insensitively).
#: OME-TIFF files end in ``.ome.tif``/``.ome.tiff`` and so are covered by the TIFF suffixes.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has one of :data:`SUPPORTED_SUFFIXES` (case-insensitive); the file is not opened."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def check_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking it names an existing, non-empty file.

    Parameters
    ----------
    path
        The path to check.
    what
        What the file should be (``"image"``, ``"annotation file"``), used in the messages.

    Returns
    -------
    pathlib.Path
        The same path.

    Raises
    ------
    InputError
        If the path does not exist, is a directory, is not a regular file, is empty or cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a file ({what})")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file, expected a file ({what})")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"{p}: cannot access {what} ({exc.strerror or exc})") from exc
    if size == 0:
        raise InputError(f"{p}: {what} is empty (0 bytes)")
    try:  # an unreadable file is a permission problem, not a corrupt one: say so before any decoder does
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"{p}: cannot read {what} ({exc.strerror or exc})") from exc
    return p


def iter_image_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into the list of image files to process.

    Folders are searched recursively; their images are returned sorted by path. Hidden files and
    folders (names starting with ``.``) are skipped inside folders: they are typically macOS
    ``._name.png`` resource forks or unfinished temporary files, not images. Entries named like images
    that are not files (broken symbolic links, folders such as ``x.png``) are skipped with a logged
    warning. Files named explicitly are
    kept in the order given. Duplicates are removed (the first occurrence wins).

    Parameters
    ----------
    inputs
        Image files and/or folders.

    Returns
    -------
    list of pathlib.Path
        Image files with a suffix in :data:`SUPPORTED_SUFFIXES` (case-insensitive).

    Raises
    ------
    InputError
        If an input does not exist, a file given explicitly has an unsupported suffix, or a folder holds
        no supported image.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # a lone path would otherwise be iterated character by character
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise InputError(f"{p}: input not found")
        if p.is_dir():
            candidates = [f for f in p.rglob("*") if is_image_file(f)
                          and not any(part.startswith(".") for part in f.relative_to(p).parts)]
            images = sorted(f for f in candidates if f.is_file())
            for f in sorted(set(candidates) - set(images)):  # named like an image but not one: say so
                what = "broken symbolic link" if f.is_symlink() and not f.exists() else \
                    "a folder" if f.is_dir() else "not a regular file"
                log.warning("%s: skipped (%s)", f, what)
            if not images:
                raise InputError(f"{p}: folder holds no image file ({', '.join(SUPPORTED_SUFFIXES)})")
            found.extend(images)
        elif is_image_file(p):
            found.append(p)
        else:
            raise InputError(
                f"{p}: unsupported image suffix {p.suffix or '(none)'!r} (supported: {', '.join(SUPPORTED_SUFFIXES)})"
            )
    # dict preserves insertion order: de-duplicate while keeping the first position.
    return list(dict.fromkeys(found))
