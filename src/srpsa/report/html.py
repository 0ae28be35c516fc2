"""``report.html``: one self-contained page summarising an ``srpsa analyze`` output folder.

Everything a recipient needs is inside the file (CSS inline, plots and overlay thumbnails as base64
PNG data URIs), so it can be e-mailed on its own; the thumbnails additionally link to the full-size
``<image>/overlay.png`` files by relative path for readers who have the whole folder.

Every string that comes from the folder (file names, paths, warnings, error messages, settings) is
HTML-escaped; only markup built here is emitted raw. Numbers are shown to 4 significant digits and
carry their full value in ``data-value`` attributes so the page stays machine-checkable.

Entry point: :func:`write_report`.
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

import cv2

from srpsa import __version__
from srpsa.io.atomic import atomic_write_text
from srpsa.report.collect import AnalysisFolder, ImageResult, Pooled, load_analysis, short_list
from srpsa.report.findings import Finding, collect_findings, merged_models, merged_settings
from srpsa.report.qc import qc_sections, values_cell
from srpsa.report.template import page

REPORT_NAME = "report.html"
THUMB_WIDTH = 320
# Per-image KDE curves on one axis stop being readable beyond this many images.
MAX_COMPARISON_CURVES = 12

# (key in the statistics dict, row label, has a bootstrap CI, unit kind: "size" | "%" | "1")
STAT_ROWS: tuple[tuple[str, str, bool, str], ...] = (
    ("mean", "Mean", True, "size"),
    ("d10", "D10", True, "size"),
    ("d50", "D50 (median)", True, "size"),
    ("d90", "D90", True, "size"),
    ("mode", "Mode (KDE)", False, "size"),
    ("std", "StDev", False, "size"),
    ("cv", "CV", False, "%"),
    ("span", "Span (D90\u2212D10)/D50", False, "1"),
    ("d32", "D[3,2] (Sauter)", False, "size"),
    ("d43", "D[4,3] (De Brouckere)", False, "size"),
)

SETTING_LABELS = {
    "modality": "Modality",
    "pipeline": "Pipeline",
    "pixel_size_um": "Pixel size override (\u00b5m/px)",
    "weights": "Weights folder",
    "diameter_range": "Diameter range",
    "diameter_unit": "Diameter range unit",
    "include_edge": "Border particles in statistics",
    "refine": "Sub-pixel edge refinement",
    "bootstrap": "Bootstrap resamples (95 % CI)",
    "seed": "Random seed",
    "enhance_flow": "Enhancement flow (full pipeline)",
}


# ---------------------------------------------------------------- small formatting helpers


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def unit_text(unit: str) -> str:
    return "\u00b5m" if unit == "um" else "px"


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def fmt(value: object) -> str:
    """Four significant digits, trailing zeros kept; whole numbers from 10 000 on (no exponent); '—' when absent."""
    v = _finite(value)
    if v is None:
        return "\u2014"
    if abs(v) >= 1e4:
        return f"{v:.0f}"
    # '#' keeps trailing zeros so columns read alike (11.90, not 11.9); it also leaves "1000." -> strip.
    return f"{v:#.4g}".rstrip(".")


def num_cell(value: object, key: str = "", text: str | None = None) -> str:
    v = _finite(value)
    data = f' data-key="{esc(key)}"' if key else ""
    data += f' data-value="{v!r}"' if v is not None else ""
    return f'<td class="num"{data}>{esc(text) if text is not None else fmt(value)}</td>'


def int_cell(value: object, key: str = "") -> str:
    v = _finite(value)
    text = str(int(v)) if v is not None else "\u2014"
    data = f' data-key="{esc(key)}"' if key else ""
    return f'<td class="num"{data}>{text}</td>'


def ci_cell(ci: object, key: str) -> str:
    """'low – high' of a [low, high] pair from summary.json / SizeStatistics.to_dict()."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_finite(v) is not None for v in ci):
        lo, hi = float(ci[0]), float(ci[1])
        return f'<td class="num ci" data-key="{esc(key)}" data-low="{lo!r}" data-high="{hi!r}">{fmt(lo)} \u2013 {fmt(hi)}</td>'
    return f'<td class="num ci" data-key="{esc(key)}">\u2014</td>'


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def rel_link(root: Path, target: Path) -> str:
    """Relative, URL-quoted link from the report folder to ``target`` (names may hold spaces or '#')."""
    try:
        rel = target.relative_to(root)
    except ValueError:
        rel = Path(target.name)
    return quote(rel.as_posix())


def anchor(index: int) -> str:
    # Position-based ids: image names may contain characters that are awkward in fragment ids.
    return f"img-{index}"


def table(head: Iterable[str], rows: Iterable[str], *, cls: str = "", attrs: str = "") -> str:
    """``head`` cells are markup (already escaped); ``rows`` are complete ``<tr>`` strings."""
    cls_attr = f' class="{cls}"' if cls else ""
    head_html = "".join(head)
    return f"<table{cls_attr}{attrs}><thead><tr>{head_html}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


# ---------------------------------------------------------------- images


def _figure_png(draw: Callable[[Path], None]) -> bytes:
    """Bytes of a PNG drawn by a function that insists on writing a file (srpsa.report.figures)."""
    with tempfile.TemporaryDirectory(prefix="srpsa-report-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()


def thumbnail_png(path: Path, width: int = THUMB_WIDTH) -> tuple[bytes, int, int] | None:
    """Area-downscaled PNG of an image file, (png, width, height); None when unreadable."""
    if not path.is_file():  # cv2.imread would print a warning of its own on stderr
        return None
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    if w > width:
        h, w = max(1, round(h * width / w)), width
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return (buf.tobytes(), w, h) if ok else None


def pooled_psd_png(pooled: Pooled, title: str) -> bytes:
    from srpsa.report.figures import plot_psd
    ci = {w: pooled.stats[k].to_dict().get("ci") for w, k in (("number", "Q0"), ("volume", "Q3")) if k in pooled.stats}
    return _figure_png(lambda p: plot_psd(pooled.diameters, p, unit=pooled.unit, title=title, ci=ci))


def comparison_png(images: list[ImageResult], unit: str) -> bytes:
    from srpsa.report.figures import plot_kde_comparison

    series = {im.name: im.diameters for im in images}
    return _figure_png(lambda p: plot_kde_comparison(series, p, unit=unit, title="Number-weighted (Q0) KDE per image"))


# ---------------------------------------------------------------- sections


def ci_label(stats: dict) -> str:
    level = _finite(stats.get("ci_level"))
    return f"{level * 100:g} % CI" if level is not None and 0 < level < 1 else "95 % CI"


def stats_table(q0: dict, q3: dict, unit: str, sample: str) -> str:
    """Q0 and Q3 side by side, each with its 95 % bootstrap interval where one was computed."""
    u = unit_text(unit)
    head = [
        '<th scope="col">Statistic</th>',
        f'<th scope="col" class="num">Q0 (number) [{esc(u)}]</th>',
        f'<th scope="col" class="num">Q0 {ci_label(q0)}</th>',
        f'<th scope="col" class="num">Q3 (volume) [{esc(u)}]</th>',
        f'<th scope="col" class="num">Q3 {ci_label(q3)}</th>',
    ]
    rows = []
    for key, label, has_ci, kind in STAT_ROWS:
        suffix = " (%)" if kind == "%" else " (\u2013)" if kind == "1" else ""
        cells = [f'<th scope="row">{esc(label + suffix)}</th>']
        for name, stats in (("Q0", q0), ("Q3", q3)):
            cells.append(num_cell(stats.get(key), f"{name}.{key}"))
            ci = stats.get("ci") if isinstance(stats.get("ci"), dict) else {}
            cells.append(ci_cell(ci.get(key), f"{name}.{key}.ci") if has_ci else '<td class="num ci"></td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return table(head, rows, cls="stats", attrs=f' data-sample="{esc(sample)}"')


def counts_table(count: int, counted: object, edge_excluded: int, sample: str) -> str:
    head = ['<th scope="col" class="num">Particles detected</th>', '<th scope="col" class="num">Counted in statistics</th>',
            '<th scope="col" class="num">Excluded at border</th>']
    row = f"<tr>{int_cell(count, 'count')}{int_cell(counted, 'counted')}{int_cell(edge_excluded, 'edge_excluded')}</tr>"
    return table(head, [row], cls="counts", attrs=f' data-sample="{esc(sample)}"')


def kde_note(q0: dict, q3: dict) -> str:
    methods = dict.fromkeys(str(s.get("kde_method")) for s in (q0, q3) if s.get("kde_method"))
    if not methods:
        return ""
    return f'<p class="note">Mode from the kernel density estimate; bandwidth: {esc(" / ".join(methods))}.</p>'


def _analysis_version(im: ImageResult) -> str:
    software = im.summary.get("software")
    return str(software.get("srpsa", "unknown")) if isinstance(software, dict) else "unknown"


def header_section(analysis: AnalysisFolder, title: str, generated: str) -> str:
    versions = sorted({_analysis_version(im) for im in analysis.images})
    return (
        f'<header class="report"><h1>{esc(title)}</h1><p class="meta">'
        f"<span>Analysis folder: <code>{esc(analysis.root.resolve())}</code></span>"
        f"<span>Generated {esc(generated)}</span>"
        f"<span>Report by srpsa {esc(__version__)}</span>"
        f"<span>Analysed with srpsa {esc(', '.join(versions))}</span></p></header>"
    )


def overview_section(analysis: AnalysisFolder, findings: list[Finding]) -> str:
    pooled = analysis.pooled
    n_warn = sum(f.severity == "warning" for f in findings)
    cards = [
        ("Images analysed", str(len(analysis.images))),
        ("Failed inputs", str(len(analysis.failed))),
        ("Particles counted (pooled)", str(pooled.diameters.size) if pooled else "\u2014"),
        # The unit goes with the value: the card keys are upper-cased by CSS, which turns "µm" into "MM".
        ("Pooled D50 (Q0)", f"{fmt(pooled.stats['Q0'].d50)} {unit_text(pooled.unit)}" if pooled and pooled.diameters.size else "\u2014"),
        ("Warnings", str(n_warn)),
    ]
    html = ['<section id="overview"><div class="cards">']
    html += [f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>' for k, v in cards]
    html.append("</div>")
    uncal = [im.name for im in analysis.images if not im.calibrated]
    if pooled:
        html.append(
            f'<p>All pooled sizes are equivalent circle diameters in <strong>{esc(unit_text(pooled.unit))}</strong>'
            + (" (uncalibrated: pixels, not micrometres)." if pooled.unit == "px" else ".") + "</p>"
        )
    if uncal:
        html.append(
            f'<div class="callout"><strong>Uncalibrated:</strong> {len(uncal)} image(s) have no pixel size, so their sizes are '
            f"in px: {esc(short_list(uncal))}. Give <code>--pixel-size</code> (\u00b5m/px) to <code>srpsa analyze</code> "
            "or use calibrated files.</div>"
        )
    if analysis.failed:
        html.append(
            f'<div class="callout error"><strong>Failed:</strong> {len(analysis.failed)} input(s) could not be analysed '
            '(see <a href="#images">Images</a> and <a href="#warnings">Warnings</a>).</div>'
        )
    html.append("</section>")
    return "".join(html)


def pooled_section(analysis: AnalysisFolder) -> str:
    pooled = analysis.pooled
    html = ['<section id="pooled"><h2>Pooled sample</h2>']
    if pooled is None:
        html.append('<div class="callout">No pooled statistics: no image has a readable particles.csv.</div></section>')
        return "".join(html)
    q0, q3 = pooled.stats["Q0"].to_dict(), pooled.stats["Q3"].to_dict()
    html.append(
        f"<p>{len(pooled.members)} image(s) pooled: {esc(short_list(pooled.members))}. "
        f"Sizes in {esc(unit_text(pooled.unit))}.</p>"
    )
    html += [f'<div class="callout">{esc(note[:1].upper() + note[1:])}</div>' for note in pooled.notes]
    html.append(counts_table(pooled.count, pooled.diameters.size, pooled.count_edge_excluded, "pooled"))
    html.append(stats_table(q0, q3, pooled.unit, "pooled"))
    html.append(kde_note(q0, q3))
    title = f"Pooled sample ({len(pooled.members)} image(s), n = {pooled.diameters.size})"
    html.append(
        f'<figure><img src="{data_uri(pooled_psd_png(pooled, title))}" alt="pooled particle size distribution">'
        "<figcaption>Histogram and ISJ kernel density (left axis) with the cumulative undersize curve and D10/D50/D90 "
        "(right axis), number-weighted Q0 (left) and volume-weighted Q3 (right), of all counted particles.</figcaption></figure>"
    )
    pooled_names = set(pooled.members)
    members = [im for im in analysis.images if im.name in pooled_names]
    if 2 <= len(members) <= MAX_COMPARISON_CURVES:
        html.append(
            f'<figure><img src="{data_uri(comparison_png(members, pooled.unit))}" alt="per-image size distributions">'
            "<figcaption>Number-weighted KDE of each pooled image: curves that disagree point to images that are not "
            "samples of one population (focus, region, preparation).</figcaption></figure>"
        )
    html.append("</section>")
    return "".join(html)


def _image_row(im: ImageResult, index: int, n_warnings: int) -> str:
    q0 = im.statistics("Q0")
    quality = im.summary.get("quality") if isinstance(im.summary.get("quality"), dict) else {}
    verdict = str(quality.get("status") or "ok")  # a summary without a self-check reads as analysed ok
    cells = [
        f'<td><a href="#{anchor(index)}">{esc(im.name)}</a></td>',
        f'<td title="{esc("; ".join(quality.get("reasons", [])))}">{badge(verdict, QUALITY_BADGE.get(verdict, "warning"))}</td>',
        f"<td>{esc(unit_text(im.unit))}</td>",
        int_cell(im.count, "count"),
        int_cell(im.count_used, "counted"),
        int_cell(im.count_edge_excluded, "edge_excluded"),
        num_cell(q0.get("mean"), "Q0.mean"),
        num_cell(q0.get("d50"), "Q0.d50"),
        num_cell(q0.get("cv"), "Q0.cv"),
        f'<td class="num">{badge(str(n_warnings), "warning") if n_warnings else "0"}</td>',
    ]
    return f'<tr data-image="{esc(im.name)}" data-status="ok" data-quality="{esc(verdict)}">{"".join(cells)}</tr>'


QUALITY_BADGE = {"ok": "ok", "doubtful": "warning", "failed": "failed"}  # the self-check's verdict -> badge colour


def images_section(analysis: AnalysisFolder, findings: list[Finding]) -> str:
    head = ["<th>Image</th>", '<th title="the self-check (docs/quality.md); hover for its reasons">Quality</th>', "<th>Unit</th>", '<th class="num">Count</th>', '<th class="num">Counted</th>',
            '<th class="num">Edge excl.</th>', '<th class="num">Q0 mean</th>', '<th class="num">Q0 D50</th>',
            '<th class="num">CV (%)</th>', '<th class="num">Warnings</th>']
    per_image = {}
    for f in findings:
        if f.severity == "warning":
            per_image[f.scope] = per_image.get(f.scope, 0) + 1
    rows = [_image_row(im, i, per_image.get(im.name, 0)) for i, im in enumerate(analysis.images)]
    rows += [
        f'<tr class="bad" data-image="{esc(f.name)}" data-status="failed"><td title="{esc(f.image)}">{esc(f.name)}</td>'
        f'<td>{badge("failed", "failed")}</td><td colspan="8">{esc(f.error)}</td></tr>'
        for f in analysis.failed
    ]
    return (
        '<section id="images"><h2>Images</h2>'
        "<p>One row per input; sizes in each image's own unit (Q0 = number-weighted).</p>"
        + table(head, rows, cls="images")
        + "</section>"
    )


def _pixel_size_text(im: ImageResult) -> str:
    # A calibration is a given number, not a measurement: no padded significant digits (0.4, not 0.4000).
    return f"{im.pixel_size_um:.6g}" if im.pixel_size_um else "\u2014"


def calibration_section(analysis: AnalysisFolder) -> str:
    head = ["<th>Image</th>", '<th class="num">Pixel size (\u00b5m/px)</th>', "<th>Source</th>", "<th>Size unit</th>"]
    rows = []
    for im in analysis.images:
        source = str(im.summary.get("pixel_size_source") or "none")
        cls = "" if im.calibrated else ' class="uncal"'
        rows.append(
            f'<tr{cls} data-image="{esc(im.name)}"><td>{esc(im.name)}</td>{num_cell(im.pixel_size_um, "pixel_size_um", _pixel_size_text(im))}'
            f"<td>{esc(source)}</td><td>{esc(unit_text(im.unit))}"
            + ("" if im.calibrated else " (uncalibrated)")
            + "</td></tr>"
        )
    return (
        '<section id="calibration"><h2>Calibration</h2>'
        "<p>Pixel size per image and where it came from (<code>override</code>: given with <code>--pixel-size</code>; "
        "<code>ome-xml</code>, <code>fei</code>, <code>zeiss</code>, <code>imagej</code>: file metadata; "
        "<code>none</code>: uncalibrated).</p>" + table(head, rows, cls="calibration") + "</section>"
    )


def warnings_section(findings: list[Finding]) -> str:
    if not findings:
        return '<section id="warnings"><h2>Warnings</h2><p>No warnings.</p></section>'
    head = ["<th>Severity</th>", "<th>Category</th>", "<th>Scope</th>", "<th>Message</th>"]
    rows = [
        f'<tr data-category="{esc(f.category)}" data-scope="{esc(f.scope)}"><td>{badge(f.severity, f.severity)}</td>'
        f"<td>{esc(f.category)}</td><td>{esc(f.scope)}</td><td>{esc(f.message)}</td></tr>"
        for f in findings
    ]
    return '<section id="warnings"><h2>Warnings</h2>' + table(head, rows, cls="warnings") + "</section>"


def _image_block(im: ImageResult, index: int, root: Path, findings: list[Finding]) -> str:
    overlay = im.folder / "overlay.png"
    thumb = thumbnail_png(overlay)
    if thumb is None:
        figure = '<figure><div class="callout">overlay.png missing or unreadable</div></figure>'
    else:
        png, w, h = thumb
        figure = (
            f'<figure><a href="{esc(rel_link(root, overlay))}"><img class="thumb" src="{data_uri(png)}" width="{w}" height="{h}" '
            f'alt="{esc("detections on " + im.name)}"></a><figcaption>Detected circles; magenta: touching the border. '
            "Click for the full-size overlay.png.</figcaption></figure>"
        )
    q0, q3 = im.statistics("Q0"), im.statistics("Q3")
    size = f"{im.summary.get('width', '?')} \u00d7 {im.summary.get('height', '?')} px"
    calib = f"{_pixel_size_text(im)} \u00b5m/px ({im.summary.get('pixel_size_source')})" if im.calibrated else "uncalibrated (sizes in px)"
    messages = [f for f in findings if f.scope == im.name]
    notes = "".join(f"<li>{badge(f.category, f.severity)} {esc(f.message)}</li>" for f in messages)
    files = " \u00b7 ".join(f'<a href="{esc(rel_link(root, im.folder / n))}">{n}</a>' for n in ("particles.csv", "psd.png", "summary.json") if (im.folder / n).is_file())
    return (
        f'<div class="image-block" id="{anchor(index)}">{figure}<div>'
        f"<h3>{esc(im.name)}</h3>"
        f'<p class="meta"><span>{esc(im.summary.get("image", ""))}</span><span>{esc(size)}</span><span>{esc(calib)}</span></p>'
        + counts_table(im.count, im.count_used, im.count_edge_excluded, im.name)
        + stats_table(q0, q3, im.unit, im.name)
        + kde_note(q0, q3)
        + (f"<ul>{notes}</ul>" if notes else "")
        + f'<p class="note">Files: {files}</p></div></div>'
    )


def details_section(analysis: AnalysisFolder, findings: list[Finding]) -> str:
    blocks = [_image_block(im, i, analysis.root, findings) for i, im in enumerate(analysis.images)]
    return '<section id="details"><h2>Per-image results</h2>' + "".join(blocks) + "</section>"


def settings_section(analysis: AnalysisFolder) -> str:
    rows = [f'<tr data-setting="{esc(key)}"><th scope="row">{esc(SETTING_LABELS.get(key, key))}</th><td><code>{esc(key)}</code></td>'
            f'<td>{values_cell(values)}</td></tr>' for key, values in merged_settings(analysis.images)]
    settings = table(["<th>Setting</th>", "<th>Key</th>", "<th>Value</th>"], rows, cls="settings")
    model_rows = [
        f'<tr data-model="{esc(name)}"><td>{esc(name)}</td><td class="mono">{esc(digest)}</td><td>{len(names)}</td></tr>'
        for name, digest, names in merged_models(analysis.images)
    ]
    models = table(["<th>Model</th>", "<th>Weights sha256</th>", '<th>Images</th>'], model_rows, cls="models")
    return (
        '<section id="settings"><h2>Analysis settings and models</h2>'
        "<p>As recorded in each image's summary.json (one value when all images agree).</p>"
        + settings
        + "<h3 style=\"margin-top:18px\">Models</h3>"
        + models
        + "</section>"
    )


METHODS = """<section id="methods"><h2>Methods</h2>
<p>Each detected particle is a circle; its size is the equivalent circle diameter (2&nbsp;r times the pixel size).
<strong>Q0</strong> weights every particle equally (number distribution); <strong>Q3</strong> weights each particle by
d&sup3; (volume distribution, as laser diffraction reports). For Q3 the mean is the volume-weighted mean, i.e. D[4,3].
D10/D50/D90 are weighted percentiles with midpoint interpolation; the mode is the maximum of a Gaussian kernel density
estimate with the Improved Sheather&ndash;Jones bandwidth (Silverman&rsquo;s rule when ISJ fails, as noted);
StDev uses the reliability-weight correction (n&minus;1 for Q0); CV = StDev / mean; span = (D90&minus;D10)/D50;
D[3,2] and D[4,3] are moment ratios of the number list. Confidence intervals are 95&nbsp;% percentile-bootstrap
intervals. Particles touching the image border are excluded from the statistics unless the analysis was run with
<code>--include-edge</code> (ISO&nbsp;13322-1). The particle-count warning gives the number of particles needed to know
the median to &plusmn;5&nbsp;% at 95&nbsp;% confidence for a lognormal distribution with the sample&rsquo;s spread.
Pooled statistics are recomputed from all counted particles of the pooled images.</p></section>"""


# ---------------------------------------------------------------- entry points


def render_report(analysis: AnalysisFolder, *, title: str | None = None, generated: datetime | None = None) -> str:
    """The HTML text of the report for an already loaded analysis folder."""
    title = title or f"Particle size analysis \u2013 {analysis.root.resolve().name}"
    when = (generated or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    findings = collect_findings(analysis)
    body = "".join(
        [
            header_section(analysis, title, when),
            qc_sections(analysis),
            overview_section(analysis, findings),
            pooled_section(analysis),
            images_section(analysis, findings),
            calibration_section(analysis),
            warnings_section(findings),
            details_section(analysis, findings),
            settings_section(analysis),
            METHODS,
            f"<footer>Generated by srpsa {esc(__version__)} on {esc(when)}. Links to overlay and data files are relative to "
            "the analysis folder; the images in this page are embedded.</footer>",
        ]
    )
    return page(title=esc(title), version=esc(__version__), body=body)


def write_report(out_dir: str | Path, *, title: str | None = None) -> Path:
    """Write ``out_dir/report.html`` for an ``srpsa analyze`` output folder and return its path.

    Raises :class:`srpsa.errors.InputError` (one line) when ``out_dir`` is missing, not a folder, or
    holds no analysed image. Written atomically: an existing report is replaced only by a complete one.
    """
    analysis = load_analysis(out_dir)
    text = render_report(analysis, title=title)
    target = Path(out_dir) / REPORT_NAME
    atomic_write_text(target, text)
    return target
