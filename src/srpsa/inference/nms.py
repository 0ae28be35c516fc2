"""Circle non-maximum suppression: merge the detections of several pyramid scales.

Two detections are duplicates when their centres are closer than ``thresh * max(r_a, r_b)``. Centre
distance relative to the larger radius (rather than circle IoU) is used because it separates the two
cases that matter cleanly: two touching particles of equal size have a ratio of 2, while two answers
for one particle (from two scales, or two neighbouring cells) lie within a fraction of a radius; a
small false detection inside a big particle is also caught, as its distance is small relative to the
big radius. Greedy by score, with a KD-tree so the cost grows with the number of close pairs.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def circle_nms(
    circles: np.ndarray,
    scores: np.ndarray,
    thresh: float,
    *,
    merge: str = "nms",
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy NMS on circles.

    Parameters
    ----------
    circles : np.ndarray, shape (N, 3)
        ``[x, y, r]``.
    scores : np.ndarray, shape (N,)
    thresh : float
        Duplicate if centre distance < ``thresh * max(r_a, r_b)``.
    merge : {"nms", "weighted"}
        ``"nms"`` keeps the best-scoring circle of each cluster; ``"weighted"`` replaces it by the
        score-weighted mean of the cluster (it and the detections it suppressed), which averages the
        regression noise of several scales. The score stays the best one.

    Returns
    -------
    circles : np.ndarray, shape (K, 3)
    scores : np.ndarray, shape (K,)
        Sorted by decreasing score.
    """
    circles = np.asarray(circles, np.float64).reshape(-1, 3)
    scores = np.asarray(scores, np.float64).reshape(-1)
    n = len(circles)
    if n == 0:
        return circles.copy(), scores.copy()
    order = np.argsort(-scores, kind="stable")
    c, s = circles[order], scores[order]
    tree = cKDTree(c[:, :2])
    # Every pair that could be a duplicate is within thresh * (largest radius).
    pairs = tree.query_pairs(thresh * float(c[:, 2].max()), output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        d = np.hypot(c[i, 0] - c[j, 0], c[i, 1] - c[j, 1])
        close = d < thresh * np.maximum(c[i, 2], c[j, 2])
        i, j = i[close], j[close]
        # Direct each pair from the better (lower sorted index) to the worse detection.
        a, b = np.minimum(i, j), np.maximum(i, j)
        srt = np.argsort(a, kind="stable")
        a, b = a[srt], b[srt]
        starts = np.searchsorted(a, np.arange(n + 1))
    else:
        a = b = np.zeros(0, np.int64)
        starts = np.zeros(n + 1, np.int64)

    alive = np.ones(n, bool)
    owner = np.arange(n)
    for k in range(n):  # greedy: a suppressed detection cannot suppress others
        if not alive[k]:
            continue
        victims = b[starts[k]:starts[k + 1]]
        victims = victims[alive[victims]]
        alive[victims] = False
        owner[victims] = k
    kept = np.flatnonzero(alive)
    if merge == "weighted" and len(a):
        wsum = np.bincount(owner, weights=s, minlength=n)
        merged = np.stack([np.bincount(owner, weights=s * c[:, q], minlength=n) for q in range(3)], axis=1)
        out = merged[kept] / wsum[kept, None]
    else:
        out = c[kept]
    return out, s[kept]


def suppress_clusters(circles: np.ndarray, scores: np.ndarray, cover: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop circles that are mostly filled by other, smaller detections: a cluster seen as one particle.

    A coarse pyramid scale can answer a tight cluster of small particles with one big circle, while the
    finer scales find the particles themselves; NMS keeps both because their centres are far apart
    relative to the small radii. A circle is removed when at least two smaller detections (radius below
    0.85 of it) have their centres inside it and their discs cover more than ``cover`` of its area. A
    real large particle with a few satellites on its rim stays: satellites cover a small fraction.
    ``cover <= 0`` disables the rule.
    """
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    if cover <= 0 or len(circles) < 3:
        return circles, scores
    tree = cKDTree(circles[:, :2])
    keep = np.ones(len(circles), bool)
    for i in np.argsort(-circles[:, 2]):
        r = circles[i, 2]
        inside = [j for j in tree.query_ball_point(circles[i, :2], r) if j != i and keep[j] and circles[j, 2] < 0.85 * r]
        if len(inside) >= 2 and np.sum(circles[inside, 2] ** 2) > cover * r * r:
            keep[i] = False
    return circles[keep], np.asarray(scores)[keep]
