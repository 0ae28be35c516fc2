"""`srpsa report`: one self-contained HTML page (report.html) for an `srpsa analyze` output folder."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    folder: Path = typer.Argument(..., help="Output folder of `srpsa analyze` (the --out folder)."),
    title: str | None = typer.Option(None, "--title", help="Report title (default: 'Particle size analysis - FOLDER NAME')."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print it to FOLDER/report.pdf with headless Chromium."),
) -> None:
    """Write FOLDER/report.html: statistics (pooled and per image), plots, overlays, calibration, warnings.

    All images are embedded, so the file can be e-mailed on its own. Exit status 2 when FOLDER holds no
    analysis results.
    """
    # Imported here so `srpsa --help` does not pay for matplotlib/OpenCV.
    from srpsa.report.html import write_report

    path = write_report(folder, title=title)
    typer.echo(str(path))
    if pdf:
        from srpsa.report.pdf import print_pdf

        typer.echo(str(print_pdf(path)))
