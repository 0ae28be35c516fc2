"""srpsa.psd: Q0/Q3 statistics, percentile interpolation, KDE mode + ISJ fallback, bootstrap, count rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from srpsa.errors import InputError
from srpsa.psd import (
    bootstrap_ci,
    count_warnings,
    ecd_from_area,
    equivalent_diameters,
    kde,
    kde_mode,
    required_count,
    select_for_statistics,
    size_statistics,
    weighted_percentile,
    weighted_std,
)
from srpsa.psd.statistics import _row_statistics


def test_hand_computed_small_sample():
    s = size_statistics([4.0, 1.0, 3.0, 2.0])
    assert s.n == 4 and s.weighting == "number" and s.unit == "um"
    assert s.mean == pytest.approx(2.5)
    assert s.std == pytest.approx(math.sqrt(5.0 / 3.0))  # ddof = 1
    assert s.cv == pytest.approx(100 * math.sqrt(5.0 / 3.0) / 2.5)
    # Midpoint positions 12.5/37.5/62.5/87.5 %: D50 halfway between 2 and 3, D10/D90 clamp to the ends.
    assert (s.d10, s.d50, s.d90) == pytest.approx((1.0, 2.5, 4.0))
    assert s.span == pytest.approx((4.0 - 1.0) / 2.5)
    assert s.d32 == pytest.approx(100.0 / 30.0)
    assert s.d43 == pytest.approx(354.0 / 100.0)
    assert 1.0 <= s.mode <= 4.0


def test_matches_numpy_and_scipy_references():
    d = np.random.default_rng(3).lognormal(1.0, 0.4, 257)
    s = size_statistics(d)
    assert s.mean == pytest.approx(np.mean(d))
    assert s.std == pytest.approx(np.std(d, ddof=1))
    assert s.cv == pytest.approx(100 * scipy.stats.variation(d, ddof=1))
    ref = np.percentile(d, [10, 50, 90], method="hazen")
    assert (s.d10, s.d50, s.d90) == pytest.approx(tuple(ref))
    assert s.d32 == pytest.approx(np.sum(d**3) / np.sum(d**2))
    assert s.d43 == pytest.approx(np.sum(d**4) / np.sum(d**3))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.01, 1e4, allow_nan=False), min_size=1, max_size=40),
    st.floats(0.0, 100.0),
)
def test_unit_weights_equal_numpy_hazen(values, q):
    x = np.asarray(values)
    got = weighted_percentile(x, q, weights=np.ones_like(x))
    assert got == pytest.approx(np.percentile(x, q, method="hazen"), rel=1e-9, abs=1e-9)
    # Only relative weights matter.
    assert weighted_percentile(x, q, weights=np.full(x.size, 3.0)) == pytest.approx(got, rel=1e-9, abs=1e-9)


def test_two_size_mixture_number_and_volume():
    # 90 particles of 1 um and 10 of 3 um: volumes 90 and 270, so 75 % of the volume is in the 3 um class.
    d = np.array([1.0] * 90 + [3.0] * 10)
    q0 = size_statistics(d, weighting="number")
    q3 = size_statistics(d, weighting="volume")
    assert q0.mean == pytest.approx(1.2)
    assert q0.d50 == pytest.approx(1.0)
    # 90 % lies between the midpoints of the last 1 (89.5 %) and the first 3 (90.5 %): halfway, 2.0.
    assert q0.d90 == pytest.approx(2.0)
    assert q0.mode == pytest.approx(1.0, abs=0.05)
    assert q3.mean == pytest.approx((90 + 10 * 81) / (90 + 10 * 27))  # = D[4,3] = 2.5
    assert q3.mean == pytest.approx(q3.d43)
    assert (q3.d10, q3.d50, q3.d90) == pytest.approx((1.0, 3.0, 3.0))
    assert q3.mode == pytest.approx(3.0, abs=0.05)
    # Reliability-weighted std: sum w (x - m)^2 / (V1 - V2 / V1) = 270 / (360 - 7380 / 360).
    assert q3.std == pytest.approx(math.sqrt(270.0 / (360.0 - 7380.0 / 360.0)))
    assert q0.d32 == q3.d32 == pytest.approx(360.0 / 180.0)
    assert q0.d43 == q3.d43 == pytest.approx(2.5)


def test_weighted_std_unit_weights_is_ddof1():
    x = np.array([2.0, 3.0, 7.0, 11.0])
    assert weighted_std(x) == pytest.approx(np.std(x, ddof=1))
    assert weighted_std(x, np.full(4, 5.0)) == pytest.approx(np.std(x, ddof=1))


def test_kde_mode_of_lognormal_near_analytic_mode():
    mu, sigma = math.log(10.0), 0.3
    d = np.random.default_rng(0).lognormal(mu, sigma, 20000)
    mode, method = kde_mode(d)
    assert method == "ISJ"
    # ISJ on 20 000 points: the KDE peak wobbles a few percent around exp(mu - sigma^2) = 9.14.
    assert mode == pytest.approx(math.exp(mu - sigma**2), rel=0.05)
    # The volume-weighted density of a lognormal is lognormal with median exp(mu + 3 sigma^2).
    mode3, _ = kde_mode(d, weights=d**3)
    assert mode3 == pytest.approx(math.exp(mu + 3 * sigma**2 - sigma**2), rel=0.05)
    grid, dens, _ = kde(d)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("sample", [[1.0, 2.0], [1.0] * 50 + [10.0] * 50 + [1.1, 9.9]])
def test_isj_failure_falls_back_to_silverman_and_is_recorded(sample):
    s = size_statistics(sample)
    assert s.kde_method.startswith("silverman (ISJ failed: ")
    assert "\n" not in s.kde_method
    assert np.isfinite(s.mode)


def test_degenerate_samples():
    one = size_statistics([5.0])
    assert (one.mean, one.d50, one.mode, one.span) == (5.0, 5.0, 5.0, 0.0)
    assert math.isnan(one.std) and math.isnan(one.cv)
    assert one.kde_method == "none (single value)"
    ties = size_statistics([7.0] * 6, weighting="volume")
    assert (ties.mode, ties.std, ties.cv) == (7.0, 0.0, 0.0)
    assert ties.kde_method == "none (all values equal)"
    empty = size_statistics(np.array([]), ci=True)
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.mode)
    for s in (one, ties, empty):
        json.dumps(s.to_dict(), allow_nan=False)  # NaN -> None, so strict JSON works
    assert empty.to_dict()["d50"] is None and empty.to_dict()["ci"]["mean"] == [None, None]


def test_invalid_inputs_raise_input_error():
    with pytest.raises(InputError):
        size_statistics([1.0, -2.0])
    with pytest.raises(InputError):
        size_statistics([1.0, float("nan")])
    with pytest.raises(InputError):
        size_statistics([1.0, 2.0], weighting="area")
    with pytest.raises(InputError):
        size_statistics(np.ones((3, 2)))


def test_bootstrap_ci_contains_true_mean_and_is_deterministic():
    mu, sigma = math.log(8.0), 0.35
    d = np.random.default_rng(11).lognormal(mu, sigma, 400)
    a = size_statistics(d, ci=True, n_boot=400, seed=5)
    b = size_statistics(d, ci=True, n_boot=400, seed=5)
    c = size_statistics(d, ci=True, n_boot=400, seed=6)
    assert a.ci == b.ci and a.ci != c.ci
    assert set(a.ci) == {"mean", "d10", "d50", "d90"} and a.ci_level == 0.95
    lo, hi = a.ci["mean"]
    assert lo < math.exp(mu + sigma**2 / 2) < hi
    lo50, hi50 = a.ci["d50"]
    assert lo50 < math.exp(mu) < hi50
    for key in ("mean", "d10", "d50", "d90"):
        assert a.ci[key][0] <= getattr(a, key) <= a.ci[key][1]


def test_bootstrap_independent_of_chunking():
    d = np.random.default_rng(2).lognormal(1.0, 0.5, 150)
    stat = _row_statistics("volume")
    assert bootstrap_ci(d, stat, n_boot=64, seed=1) == bootstrap_ci(d, stat, n_boot=64, seed=1, max_elements=400)


def test_required_count_formula():
    s = 0.2
    d = np.exp([-s, 0.0, s])  # std of ln d (ddof=1) is exactly 0.2
    z2 = scipy.stats.norm.ppf(0.975) ** 2
    assert required_count(d) == math.ceil(z2 * s**2 / 0.05**2) == 62
    assert required_count(d, precision=0.1, confidence=0.9) == math.ceil(
        scipy.stats.norm.ppf(0.95) ** 2 * s**2 / 0.1**2
    )
    vol = z2 * (s**2 + 9 * s**4) * math.exp(9 * s**2) / 0.05**2
    assert required_count(d, weighting="volume") == math.ceil(vol)
    assert required_count([3.0, 3.0]) == 2
    with pytest.raises(InputError):
        required_count([3.0])
    with pytest.raises(InputError):
        required_count(d, precision=1.5)


def test_count_warnings():
    rng = np.random.default_rng(4)
    small = rng.lognormal(2.0, 0.5, 20)
    msgs = count_warnings(small)
    assert len(msgs) == 1 and "ISO 13322-1" in msgs[0] and "20 particles" in msgs[0]
    assert count_warnings(rng.lognormal(2.0, 0.1, 500)) == []
    assert count_warnings([]) and count_warnings([4.0])
    assert size_statistics(small).warnings == msgs


def test_select_for_statistics_excludes_edge_by_default():
    flags = np.array([0, 1, 0, 1])
    assert select_for_statistics(flags).tolist() == [True, False, True, False]
    assert select_for_statistics(flags.astype(bool), include_edge=True).all()
    assert select_for_statistics(np.array([], dtype=bool)).size == 0
    with pytest.raises(InputError):
        select_for_statistics(np.array([0, 2]))


def test_equivalent_diameters_and_units():
    circles = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 0.5]])
    d, unit = equivalent_diameters(circles, 0.25)
    assert unit == "um" and d.tolist() == [1.5, 0.25]
    d, unit = equivalent_diameters(circles)
    assert unit == "px" and d.tolist() == [6.0, 1.0]
    d, unit = ecd_from_area(np.array([math.pi * 4.0]))
    assert unit == "px" and d[0] == pytest.approx(4.0)
    with pytest.raises(InputError):
        equivalent_diameters(circles, -1.0)
    assert size_statistics(d, unit="px").to_dict()["unit"] == "px"
