"""report.pdf: the HTML report printed by headless Chromium (``--print-to-pdf``).

Why Chromium and not a Python HTML renderer: the report's CSS (grid, cards, embedded PNGs) renders as in
a browser, and Chromium is a system package most lab machines can install (``apt-get install chromium``);
WeasyPrint would pull in Pango/Cairo for a second, slightly different layout. No network is used: the
report is self-contained and Chromium is started with a throw-away profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from srpsa.errors import InputError, SrpsaError
from srpsa.io.atomic import atomic_path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TIMEOUT_S = 120.0


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: $SRPSA_CHROMIUM, else the first of :data:`CANDIDATES` on PATH."""
    explicit = os.environ.get("SRPSA_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def print_pdf(html_path: str | Path, pdf_path: str | Path | None = None) -> Path:
    """Print ``html_path`` to ``pdf_path`` (default: same name, .pdf); returns the PDF path.

    Raises :class:`SrpsaError` with one line when Chromium is missing or fails.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise InputError(f"--pdf: report {html_path} not found")
    target = Path(pdf_path) if pdf_path else html_path.with_suffix(".pdf")
    exe = find_chromium()
    if exe is None:
        raise SrpsaError("--pdf needs Chromium (not found: install it, e.g. `apt-get install chromium`, or set $SRPSA_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="srpsa-chromium-") as profile, atomic_path(target) as tmp:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions", "--no-first-run",
            "--disable-background-networking", "--no-pdf-header-footer", f"--user-data-dir={profile}",
            f"--print-to-pdf={tmp}", html_path.as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SrpsaError(f"--pdf: Chromium did not finish within {TIMEOUT_S:g} s") from None
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise SrpsaError(f"--pdf: Chromium failed (exit {proc.returncode}): {last}")
    return target
