"""benchmarks/generalisation*.py helpers: ROI don't-care rule, pooling, markdown (no pipeline runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from generalisation import evaluate, score_set  # noqa: E402
from generalisation_md import table  # noqa: E402
from generalisation_sets import Case, restrict_to_roi  # noqa: E402

SHAPE = (400, 400)


def test_roi_rule_ignores_outside_and_straddling() -> None:
    gt = np.array([[200, 200, 10], [290, 200, 10], [320, 200, 10]], float)  # roi r 100: in, in, out
    pred = np.array([[201, 200, 10], [322, 200, 10], [200, 330, 10], [200, 250, 10]], float)
    g, p = restrict_to_roi(gt, pred, (200, 200, 100))
    assert len(g) == 2  # the bead centred outside is not scored
    # kept: the match inside, the unmatched false positive inside; dropped: match to the outside bead,
    # the unmatched prediction outside
    assert {tuple(r) for r in p} == {(201, 200, 10), (200, 250, 10)}


def test_evaluate_and_pool() -> None:
    gt = np.array([[100, 100, 10], [200, 200, 12], [300, 100, 8]], float)
    pred = gt[:2] * [1, 1, 1.1]
    case = Case("render2", "x", Path("x.png"), "om", gt)
    rec = evaluate(case, pred, SHAPE) | {"seconds": 1.0, "quality": "ok", "image": "x.png", "warnings": []}
    assert abs(rec["f1"] - 0.8) < 1e-9
    res = score_set([rec])
    assert res["precision"] == 1.0 and abs(res["recall"] - 2 / 3) < 1e-9
    assert abs(res["radius_bias_pct"] - 10) < 1e-6 and res["flagged"] == 0
    md = table({"x": {"group": "render2", "modality": "om", "default": res}},
               {"date": "d", "command": "c", "seconds": 60, "machine": "m", "baselines": "b.json"})
    assert "render2 `x`" in md and "**0.800**" in md


def test_nominal_only_set() -> None:
    case = Case("real", "trackpy", Path("f.png"), "om", None, nominal_d_px=14.0)
    pred = np.array([[100, 100, 7.7], [200, 200, 7.7]])
    rec = evaluate(case, pred, SHAPE) | {"seconds": 1.0, "quality": None, "image": "f.png", "warnings": []}
    res = score_set([rec])
    assert abs(res["mean_err_pct"] - 10) < 1e-6 and "f1" not in res
