"""Markdown table of benchmarks/generalisation.py's results (one row per set/style and method)."""

from __future__ import annotations

import math

COLUMNS = "| set | modality | method | images | P | R | F1 | mean d err | median abs r err | r bias | s/image | flagged |\n"


def _f(v, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table(results: dict, meta: dict) -> str:
    head = [f"## Generalisation benchmark (issue 13; {meta['date']})\n\n",
            f"Command: `{meta['command']}` ({meta['seconds'] / 60:.0f} min; {meta['machine']}). Raw numbers and per-image "
            "results: `benchmarks/generalisation.json`.\n\n",
            "Test data no model, tuning or threshold saw: render2 (independent wave-optical renderer, seeds >= 900,000,000) "
            "and the real sets. Hough and watershed are tuned on srpsa.synth preset `train` (the training distribution, "
            f"`benchmarks/{meta['baselines']}`), not on test images. P/R/F1: one-to-one matching, centre distance <= 0.5 r_gt, "
            "border-cut particles ignored. mean d err: interior mean diameter vs truth (trackpy: vs nominal 2.12 um; "
            "CV in place of P/R). r err / bias: median |r/r_gt - 1| and median (r/r_gt - 1) of matched pairs. flagged: images "
            "whose summary quality is doubtful/failed (of those carrying a quality field).\n\n",
            COLUMNS, "|" + "---|" * 12 + "\n"]  # fmt: skip
    rows = []
    for group in ("render2", "real"):
        for name, res in results.items():
            if res["group"] != group:
                continue
            for method, r in res.items():
                if method in ("group", "modality"):
                    continue
                label = f"render2 `{name}`" if group == "render2" else name
                flag = f"{r['flagged']}/{r['quality_known']}" if r["quality_known"] else "-"
                if "f1" in r:
                    cells = [_f(r["precision"], ".3f"), _f(r["recall"], ".3f"), f"**{_f(r['f1'], '.3f')}**"]
                else:
                    cells = ["-", f"CV {_f(r.get('cv_pct'), '.1f')} %", "-"]
                rows.append(f"| {label} | {res['modality']} | {method} | {r['images']} | " + " | ".join(cells)
                            + f" | {_f(r['mean_err_pct'], '+.1f')} % | {_f(r.get('radius_abs_err_pct'), '.1f')} % | "
                            f"{_f(r.get('radius_bias_pct'), '+.1f')} % | {r['seconds_per_image']:.1f} | {flag} |\n")  # fmt: skip
    return "".join(head + rows)
