"""The Bradley-Terry negative log-likelihood, shared by every preference loss on rewards.

004's reward loss on segment returns (Eq. 8, ``margin = (R_a - R_b) / beta``) and the DPO
family on implicit rewards (003 Eq. 5, ``margin = beta (log-ratio of the chosen -
log-ratio of the rejected)``; 004 Eqs. 10-11) are the same likelihood of a margin.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["bradley_terry_nll"]


def bradley_terry_nll(margin: Tensor, label: Tensor | None = None, reduction: str = "none") -> Tensor:
    """``-log P(label | margin)`` per pair (``reduction="none"``) or its mean, ``P(a > b) = sigmoid(margin)``.

    ``label=None`` means ``a`` was preferred (``-log sigmoid(margin)``); a (soft) label
    ``y = P(a > b)`` gives ``-[y log sigmoid(margin) + (1 - y) log sigmoid(-margin)]``.
    """
    if reduction not in ("none", "mean"):
        raise ValueError(f"reduction must be 'none' or 'mean'; got {reduction!r}")
    if label is None:
        per = -F.logsigmoid(margin)
        return per if reduction == "none" else per.mean()
    return F.binary_cross_entropy_with_logits(margin, label, reduction=reduction)
