"""`srpsa review`: check and correct the circles of an analysis folder in the browser."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    folder: Path = typer.Argument(..., help="Output folder of `srpsa analyze` (the --out folder)."),
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 to serve the page on."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser tab."),
) -> None:
    """Serve a review page for FOLDER on 127.0.0.1: circles over each image; add, move, resize, delete.

    Saving an image rewrites its particles.csv (with a `source` column: auto / added / edited),
    review.json, summary.json, overlay.png and psd.png, then the folder's summary.csv and report.html.
    A reviewed folder is training data for `srpsa train detect --data FOLDER`.
    """
    from srpsa.review.folder import check_analysis_folder
    from srpsa.review.server import serve

    serve(check_analysis_folder(folder), port, open_browser=not no_browser)
