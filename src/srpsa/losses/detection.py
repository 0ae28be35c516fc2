"""The SR-PSA detector's training loss, eq. 4-5 of the paper (the network and its target maps are in
:mod:`srpsa.models.detector`)."""

from __future__ import annotations

import torch

from srpsa.models.detector import T_POS, T_R, T_WNEG, T_X, T_Y
from srpsa.models.detector_config import LossConfig


def detection_loss(pred: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 4-5: ``(x_err + y_err + r_err + p_err) / 4``.

    ``x_err``, ``y_err``, ``r_err`` are mean squared errors over the cells holding a centre (the
    paper's mask). ``p_err`` follows ``cfg.p_loss``:

    - ``"balanced"``: ``lambda * mean_pos((p - 1)^2) + weighted_mean_neg(p^2)``, the negative cells
      weighted by ``T_WNEG`` (soft near positives, 0 where ignored). Means are taken separately so the
      balance does not drift with particle density;
    - ``"paper_masked"``: ``lambda * mean_pos((p - 1)^2)``, eq. 4 read literally (never penalises a
      false positive; kept only to show why it is not the default).

    Parameters
    ----------
    pred : torch.Tensor, (B, 4, h, w)
    target : torch.Tensor, (B, 6, h, w) from :func:`srpsa.models.detector.encode_targets`
    cfg : LossConfig

    Returns
    -------
    total : torch.Tensor (scalar)
    parts : dict of float
        ``x``, ``y``, ``r``, ``p`` terms (detached) for logging.
    """
    pos = target[:, T_POS]
    n_pos = pos.sum().clamp(min=1.0)

    def masked(i: int, t: int) -> torch.Tensor:
        return ((pred[:, i] - target[:, t]) ** 2 * pos).sum() / n_pos

    x_err, y_err, r_err = masked(1, T_X), masked(2, T_Y), masked(3, T_R)
    p_pos = ((pred[:, 0] - 1.0) ** 2 * pos).sum() / n_pos
    if cfg.p_loss == "balanced":
        w_neg = target[:, T_WNEG] * (1.0 - pos)
        p_neg = (pred[:, 0] ** 2 * w_neg).sum() / w_neg.sum().clamp(min=1.0)
        p_err = cfg.lambda_p * p_pos + p_neg
    else:
        p_err = cfg.lambda_p * p_pos
    total = (x_err + y_err + r_err + p_err) / 4.0
    parts = {k: float(v.detach()) for k, v in (("x", x_err), ("y", y_err), ("r", r_err), ("p", p_err))}
    return total, parts
