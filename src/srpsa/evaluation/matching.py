"""One-to-one matching of predicted circles to ground-truth circles by centre distance.

A prediction ``j`` may match a ground-truth circle ``i`` only if their centres are at most
``factor * r_gt[i]`` apart (default ``factor = 0.5``). Among admissible pairs we take a matching with
the **largest number of pairs** and, among those, the **smallest total centre distance** (a maximum-
cardinality minimum-cost bipartite matching), so a duplicate prediction can never steal a true positive.

Scaling to tens of thousands of circles per image: a KD-tree lists the admissible pairs only (sparse);
the bipartite graph of admissible pairs is split into connected components and each component is solved
exactly with :func:`scipy.optimize.linear_sum_assignment` on its small dense cost matrix. Inside a
component, inadmissible pairs get a cost ``BIG`` larger than any sum of admissible distances, so the
solver first maximises the number of admissible pairs and then minimises their total distance; any
inadmissible pair it is forced to assign (rectangular problems) is dropped afterwards. The result is
exactly the optimum over admissible pairs; components never interact because no admissible pair links
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from srpsa.errors import InputError

DEFAULT_MATCH_FACTOR = 0.5


@dataclass(frozen=True)
class MatchResult:
    """Outcome of :func:`match_circles`.

    Attributes
    ----------
    gt_idx, pred_idx : np.ndarray of int, shape (K,)
        Indices of matched pairs into the ground-truth and prediction arrays, sorted by ``gt_idx``.
    distances : np.ndarray of float, shape (K,)
        Centre distance of each matched pair, in pixels.
    n_gt, n_pred : int
        Number of ground-truth and predicted circles that were matched against each other.
    """

    gt_idx: np.ndarray
    pred_idx: np.ndarray
    distances: np.ndarray
    n_gt: int
    n_pred: int

    @property
    def n_matched(self) -> int:
        return int(self.gt_idx.size)

    def unmatched_gt(self) -> np.ndarray:
        """Indices of ground-truth circles without a partner (false negatives)."""
        mask = np.ones(self.n_gt, dtype=bool)
        mask[self.gt_idx] = False
        return np.flatnonzero(mask)

    def unmatched_pred(self) -> np.ndarray:
        """Indices of predictions without a partner (false positives)."""
        mask = np.ones(self.n_pred, dtype=bool)
        mask[self.pred_idx] = False
        return np.flatnonzero(mask)


def as_circles(circles: np.ndarray | None, name: str = "circles") -> np.ndarray:
    """Return ``circles`` as a float64 ``(N, 3)`` array ``[x, y, r]``; raise InputError if it is not one."""
    if circles is None:
        return np.zeros((0, 3))
    arr = np.asarray(circles, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 3))
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise InputError(f"{name} must be an (N, 3) array of x, y, r; got shape {arr.shape}")
    arr = arr[:, :3]
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    if np.any(arr[:, 2] <= 0):
        raise InputError(f"{name} has a non-positive radius")
    return arr


def candidate_pairs(gt: np.ndarray, pred: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Admissible (gt, pred) pairs: centre distance <= ``factor * r_gt``.

    Returns ``(gt_idx, pred_idx, distance)`` arrays, found with a KD-tree on the prediction centres so the
    work grows with the number of admissible pairs, not with ``n_gt * n_pred``.
    """
    empty = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0))
    if len(gt) == 0 or len(pred) == 0:
        return empty
    tree = cKDTree(pred[:, :2])
    radii = factor * gt[:, 2]
    # One ball query per GT circle with its own radius; scipy vectorises per-point radii.
    hits = tree.query_ball_point(gt[:, :2], r=radii)
    counts = np.fromiter((len(h) for h in hits), dtype=np.intp, count=len(hits))
    if counts.sum() == 0:
        return empty
    gi = np.repeat(np.arange(len(gt), dtype=np.intp), counts)
    pj = np.fromiter((j for h in hits for j in h), dtype=np.intp, count=int(counts.sum()))
    d = np.hypot(gt[gi, 0] - pred[pj, 0], gt[gi, 1] - pred[pj, 1])
    keep = d <= radii[gi]  # guard against the tree's floating-point slack at the ball boundary
    return gi[keep], pj[keep], d[keep]


def match_circles(gt: np.ndarray, pred: np.ndarray, *, factor: float = DEFAULT_MATCH_FACTOR) -> MatchResult:
    """Match predictions to ground truth one-to-one (Hungarian algorithm on admissible pairs).

    Parameters
    ----------
    gt, pred : np.ndarray, shape (N, 3) and (M, 3)
        Circles ``[x, y, r]`` in pixels (either may be empty).
    factor : float
        A pair is admissible when the centre distance is <= ``factor * r_gt``.

    Returns
    -------
    MatchResult
        Matched index pairs and their centre distances.
    """
    if not (np.isfinite(factor) and factor > 0):
        raise InputError(f"match factor must be a positive number, got {factor}")
    gt = as_circles(gt, "ground-truth circles")
    pred = as_circles(pred, "predicted circles")
    n_gt, n_pred = len(gt), len(pred)
    gi, pj, d = candidate_pairs(gt, pred, factor)
    if gi.size == 0:
        return _result(np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0), n_gt, n_pred)

    # Connected components of the bipartite graph: GT nodes 0..n_gt-1, predictions n_gt..n_gt+n_pred-1.
    n = n_gt + n_pred
    graph = sparse.coo_matrix((np.ones(gi.size), (gi, pj + n_gt)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    comp = labels[gi]

    # Fast path: a component with exactly one admissible pair is that pair (the common case).
    edges_per_comp = np.bincount(comp, minlength=labels.max() + 1)
    single = edges_per_comp[comp] == 1
    out_g, out_p, out_d = [gi[single]], [pj[single]], [d[single]]

    multi = ~single
    if multi.any():
        order = np.argsort(comp[multi], kind="stable")
        mg, mp, md, mc = gi[multi][order], pj[multi][order], d[multi][order], comp[multi][order]
        bounds = np.flatnonzero(np.diff(mc)) + 1
        for sg, sp, sd in zip(np.split(mg, bounds), np.split(mp, bounds), np.split(md, bounds)):
            g, p, dist = _solve_component(sg, sp, sd)
            out_g.append(g)
            out_p.append(p)
            out_d.append(dist)

    g_all = np.concatenate(out_g)
    p_all = np.concatenate(out_p)
    d_all = np.concatenate(out_d)
    order = np.argsort(g_all, kind="stable")
    return _result(g_all[order], p_all[order], d_all[order], n_gt, n_pred)


def _solve_component(gi: np.ndarray, pj: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact maximum-cardinality minimum-distance matching inside one connected component."""
    g_nodes, g_local = np.unique(gi, return_inverse=True)
    p_nodes, p_local = np.unique(pj, return_inverse=True)
    # BIG exceeds the largest possible total of admissible distances, so trading one more admissible
    # pair for any distance saving is never worth it: cardinality first, then total distance.
    big = float(d.max()) * min(len(g_nodes), len(p_nodes)) + 1.0
    cost = np.full((len(g_nodes), len(p_nodes)), big)
    cost[g_local, p_local] = d
    admissible = np.zeros(cost.shape, dtype=bool)
    admissible[g_local, p_local] = True
    rows, cols = linear_sum_assignment(cost)
    keep = admissible[rows, cols]
    rows, cols = rows[keep], cols[keep]
    return g_nodes[rows], p_nodes[cols], cost[rows, cols]


def _result(g: np.ndarray, p: np.ndarray, d: np.ndarray, n_gt: int, n_pred: int) -> MatchResult:
    return MatchResult(gt_idx=g.astype(np.intp), pred_idx=p.astype(np.intp), distances=d.astype(np.float64), n_gt=n_gt, n_pred=n_pred)
