"""The QC part of report.html: sample metadata, pass/fail against the specification, shape flag shares.

Inputs come from each image's summary.json: ``meta`` (``--meta``), ``settings.spec`` (``--spec``) and
``shape.flags``. The specification is re-evaluated here on each image's and on the pooled statistics, so
the pooled verdict uses exactly the pooled numbers the report shows. The page helpers of
srpsa.report.html are imported inside the functions because html.py imports this module.
"""

from __future__ import annotations

from srpsa.io.meta import META_KEYS
from srpsa.psd.shape import FLAGS
from srpsa.psd.spec import evaluate_spec, parse_spec
from srpsa.report.collect import AnalysisFolder, ImageResult, as_count, short_list

_VERDICT_KIND = {"pass": "ok", "fail": "error", "n/a": "warning"}


def _meta(images: list[ImageResult]) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    rows = []
    for key in META_KEYS:
        values: dict[str, list[str]] = {}
        for im in images:
            meta = im.summary.get("meta") if isinstance(im.summary.get("meta"), dict) else {}
            if key in meta:
                values.setdefault(str(meta[key]), []).append(im.name)
        if values:
            rows.append((key, list(values.items())))
    return rows


def _specs(images: list[ImageResult]) -> list[str]:
    return [s for s in dict.fromkeys(str((im.settings or {}).get("spec") or "") for im in images) if s]


def _verdict(result: dict) -> str:
    from srpsa.report.html import badge, esc, fmt, table  # noqa: F401

    return badge(result["verdict"].upper(), _VERDICT_KIND.get(result["verdict"], "warning"))


def spec_results(analysis: AnalysisFolder, spec: str) -> list[tuple[str, dict]]:
    """(name, verdict dict) per image and, when there is a pooled sample, ``("POOLED", ...)`` last."""
    criteria = parse_spec(spec)
    out = [(im.name, evaluate_spec(criteria, {t: im.statistics(t) for t in ("Q0", "Q3")}, im.unit)) for im in analysis.images]
    if analysis.pooled is not None:
        stats = {t: s.to_dict() for t, s in analysis.pooled.stats.items()}
        out.append(("POOLED", evaluate_spec(criteria, stats, analysis.pooled.unit)))
    return out


def values_cell(values: list[tuple[str, list[str]]]) -> str:
    """A table cell for a field that may differ between images (sample metadata, settings): the one
    value, or each value with the images that have it."""
    from srpsa.report.html import esc

    if len(values) == 1:
        return esc(values[0][0])
    return "<br>".join(f'{esc(v)} <span class="note">({esc(short_list(names))})</span>' for v, names in values)


def meta_section(analysis: AnalysisFolder) -> str:
    from srpsa.report.html import badge, esc, fmt, table  # noqa: F401

    rows = [f'<tr data-meta="{esc(key)}"><th scope="row">{esc(key.capitalize())}</th><td>{values_cell(values)}</td></tr>'
            for key, values in _meta(analysis.images)]
    if not rows:
        return ""
    return '<section id="sample"><h2>Sample</h2>' + table(["<th>Field</th>", "<th>Value</th>"], rows, cls="meta") + "</section>"


def spec_section(analysis: AnalysisFolder) -> str:
    from srpsa.report.html import badge, esc, fmt, table  # noqa: F401

    specs = _specs(analysis.images)
    if not specs:
        return ""
    html = ['<section id="specification"><h2>Specification</h2>']
    if len(specs) > 1:
        html.append(f'<div class="callout error">The images were checked against different specifications: {esc("; ".join(specs))}. '
                    "Shown against the first.</div>")
    results = spec_results(analysis, specs[0])
    criteria = [c["criterion"] for c in results[0][1]["criteria"]] if results else []
    head = ["<th>Image</th>", "<th>Verdict</th>", *[f"<th>{esc(c)}</th>" for c in criteria]]
    rows = []
    for name, res in results:
        cells = [f"<td>{'<strong>POOLED</strong>' if name == 'POOLED' else esc(name)}</td>", f"<td>{_verdict(res)}</td>"]
        for c in res["criteria"]:
            note = f' <span class="note">({esc(c["note"])})</span>' if c["note"] else ""
            cells.append(f'<td class="num" data-verdict="{esc(c["verdict"])}">{esc(fmt(c["value"]))} {_verdict(c)}{note}</td>')
        rows.append(f'<tr data-image="{esc(name)}" data-verdict="{esc(res["verdict"])}">{"".join(cells)}</tr>')
    html.append(f"<p>Specification <code>{esc(specs[0])}</code> (number-weighted Q0 unless prefixed Q3:; sizes in the result's unit, CV in %).</p>")
    html.append(table(head, rows, cls="spec"))
    html.append("</section>")
    return "".join(html)


def flags_section(analysis: AnalysisFolder) -> str:
    from srpsa.report.html import badge, esc, fmt, table  # noqa: F401

    per = [(im, (im.summary.get("shape") or {}).get("flags")) for im in analysis.images]
    per = [(im, f) for im, f in per if isinstance(f, dict)]
    if not per:
        return ""
    head = ["<th>Image</th>", "<th>Particles</th>", *[f"<th>{esc(f)}</th>" for f in FLAGS]]
    rows, total, weighted = [], 0, dict.fromkeys(FLAGS, 0.0)
    for im, flags in per:
        n = as_count(im.count)
        total += n
        for f in FLAGS:
            weighted[f] += float(flags.get(f, 0.0)) * n
        cells = "".join(f'<td class="num" data-flag="{f}">{100 * float(flags.get(f, 0.0)):.1f} %</td>' for f in FLAGS)
        rows.append(f'<tr data-image="{esc(im.name)}"><td>{esc(im.name)}</td><td class="num">{n}</td>{cells}</tr>')
    if len(per) > 1 and total:
        cells = "".join(f'<td class="num" data-flag="{f}">{100 * weighted[f] / total:.1f} %</td>' for f in FLAGS)
        rows.append(f'<tr data-image="POOLED"><td><strong>All</strong></td><td class="num">{total}</td>{cells}</tr>')
    excluded = any((im.summary.get("shape") or {}).get("exclude_flagged") for im, _ in per)
    note = ("Flagged particles (non_round, agglomerate, occluded, low_contrast) are <strong>excluded</strong> from the statistics (--exclude-flagged)."
            if excluded else "Flagged particles are counted in the statistics; --exclude-flagged leaves them out.")
    return ('<section id="shape"><h2>Particle shape flags</h2><p>Share of particles per shape flag (docs/exports.md). '
            f"{note}</p>" + table(head, rows, cls="flags") + "</section>")


def qc_sections(analysis: AnalysisFolder) -> str:
    """Sample, specification and shape sections (empty strings where the analysis has none)."""
    return meta_section(analysis) + spec_section(analysis) + flags_section(analysis)
