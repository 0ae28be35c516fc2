"""The self-check (srpsa.inference.quality): true circles pass, circles on noise or misplaced fail."""

import numpy as np
import pytest

from srpsa.inference.quality import QualityConfig, assess, overlap_share, radial_f, ring_profiles


def _disks(n_side: int = 8, d: float = 20.0, size: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    step = size / n_side
    c = np.array([((i + 0.5) * step, (j + 0.5) * step, d / 2) for i in range(n_side) for j in range(n_side)])
    c[:, :2] += rng.uniform(-3, 3, (len(c), 2))
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size), 200.0, np.float32)
    for x, y, r in c:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = 60.0
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    return img, c


def test_true_circles_are_ok():
    img, c = _disks()
    q = assess(img, c, {"scales_from": "estimate"})
    assert q.status == "ok", q.reasons
    assert q.metrics["weak_share"] < 0.05
    assert 0.9 <= q.metrics["edge_ratio"] <= 1.1


def test_circles_on_background_fail():
    img, c = _disks()
    rng = np.random.default_rng(1)
    noise_img = rng.normal(128, 20, img.shape).astype(np.float32)
    q = assess(noise_img, c)
    assert q.status == "failed"
    assert "no radial structure" in q.reasons[0]


def test_circles_too_small_are_doubtful():
    img, c = _disks(d=30.0)
    q = assess(img, c * [1, 1, 0.7])
    assert q.status == "doubtful"
    assert any("steepest edge" in r for r in q.reasons)


def test_polarity_does_not_matter():
    img, c = _disks()
    assert assess(255.0 - img, c).status == "ok"


def test_no_circles_and_tiny_particles_and_unsure_scale():
    img, c = _disks()
    assert assess(img, np.empty((0, 3))).status == "failed"
    small_img, small = _disks(d=4.0, n_side=20)
    q = assess(small_img, small)
    assert any("below 5 px" in r for r in q.reasons)
    assert any("not confident" in r for r in assess(img, c, {"scales_from": "config"}).reasons)


def test_overlap_share_counts_deep_pairs_only():
    touching = np.array([[0.0, 0.0, 5.0], [10.0, 0.0, 5.0], [100.0, 100.0, 5.0]])
    assert overlap_share(touching, 0.6) == 0.0
    dup = np.array([[0.0, 0.0, 5.0], [2.0, 0.0, 5.0], [100.0, 100.0, 5.0]])
    assert overlap_share(dup, 0.6) == pytest.approx(2 / 3)


def test_radial_f_is_about_one_without_structure():
    rng = np.random.default_rng(2)
    img = rng.normal(0, 1, (600, 600)).astype(np.float32)
    c = np.column_stack([rng.uniform(50, 550, 400), rng.uniform(50, 550, 400), np.full(400, 10.0)])
    p, _ = ring_profiles(img, c, QualityConfig())
    assert 0.5 < float(np.median(radial_f(p))) < 3.0


def test_cost_is_bounded_by_the_sample():
    img, c = _disks()
    many = np.repeat(c, 100, axis=0)
    q = assess(img, many, cfg=QualityConfig(max_circles=500))
    assert q.metrics["checked"] == 500


@pytest.mark.parametrize("max_circles", [3000, 50])  # sample = every circle / a sample (F recomputed for all)
def test_self_check_drops_structureless_circles_when_many(max_circles):
    from srpsa.inference.quality import self_check

    img, c = _disks()
    rng = np.random.default_rng(3)
    bogus = np.column_stack([rng.uniform(20, 380, 60), rng.uniform(20, 380, 60), np.full(60, 3.0)])
    bogus = bogus[np.min(np.hypot(*(bogus[:, None, :2] - c[None, :, :2]).transpose(2, 0, 1)), axis=1) > 16]
    both = np.vstack([c, bogus])
    keep, q = self_check(img, both, cfg=QualityConfig(max_circles=max_circles))
    assert q.status == "doubtful" and q.metrics["removed"] == int((~keep).sum()) > 0.8 * len(bogus)
    assert keep[: len(c)].mean() > 0.95
    assert any("were removed" in r for r in q.reasons)
    kept_all, q_off = self_check(img, both, prune=False)
    assert kept_all.all() and "removed" not in q_off.metrics


def test_self_check_removes_nothing_from_a_trusted_result():
    from srpsa.inference.quality import self_check

    img, c = _disks()
    keep, q = self_check(img, c)
    assert keep.all() and q.status == "ok"


@pytest.mark.parametrize("max_circles", [3000, 20])  # sample = every circle / a sample
def test_self_check_drops_a_big_structureless_circle_whatever_the_share(max_circles):
    from srpsa.inference.quality import self_check

    img, c = _disks(n_side=4, d=20.0, size=400)  # 16 particles, flat ground between them
    # one big circle on the flat ground between particles (the trackpy frame's failure) and one circle of
    # the particles' size elsewhere on the ground (weak, but it could be a faint particle): only the big one goes
    big = np.array([[100.0, 100.0, 45.0]])
    lone = np.array([[150.0, 250.0, 10.0]])
    both = np.vstack([c, big, lone])
    keep, q = self_check(img, both, cfg=QualityConfig(max_circles=max_circles))
    assert not keep[len(c)] and keep[: len(c)].all() and keep[-1]
    assert q.metrics["removed_outliers"] == 1
    # a repair, not a doubt: the verdict is that of the circles that stay
    assert q.status == self_check(img, np.vstack([c, lone]), cfg=QualityConfig(max_circles=max_circles))[1].status
    kept_all, _ = self_check(img, both, prune=False)
    assert kept_all.all()


def test_self_check_keeps_a_big_particle_with_structure():
    from srpsa.inference.quality import self_check

    img, c = _disks(n_side=4, d=20.0, size=400)
    yy, xx = np.mgrid[0:400, 0:400]
    img[(xx - 100) ** 2 + (yy - 100) ** 2 <= 45 ** 2] = 60.0  # a real big particle, 4.5x the others
    keep, q = self_check(img, np.vstack([c, [[100.0, 100.0, 45.0]]]))
    assert keep.all() and "removed_outliers" not in q.metrics


def test_self_check_leaves_the_binary_routes_measured_outlines():
    from srpsa.inference.quality import self_check

    img, c = _disks(n_side=4, d=20.0, size=400)
    both = np.vstack([c, [[100.0, 100.0, 45.0]]])
    keep, q = self_check(img, both, {"route": "binary"})
    assert keep.all() and "removed_outliers" not in q.metrics
