"""Shared pieces of the LLM losses: the output type, reductions and token-level helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from prefgym.llm.kl import masked_sum

__all__ = [
    "LossOutput",
    "weighted_mean",
    "masked_sum",
    "pairwise_differences",
]


@dataclass(frozen=True)
class LossOutput:
    """A scalar loss and its diagnostics.

    Attributes
    ----------
    loss
        0-d tensor to call ``backward()`` on (a mean over the batch).
    metrics
        Detached 0-d tensors (no host sync is forced; call ``.item()`` to log).

    ``loss, metrics = out`` unpacks it.
    """

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.loss, self.metrics))


def weighted_mean(values: Tensor, weights: Tensor | None = None) -> Tensor:
    """``mean(values)``, or ``sum(w values) / sum(w)`` with (detached, broadcast) ``weights``.

    Weights are sample weights: pass ``pi_t(y)`` over an enumerated response set to
    turn a batch mean into the exact expectation ``E_{y ~ pi_t}``.
    """
    if weights is None:
        return values.mean()
    w = torch.broadcast_to(weights.detach().to(values.dtype), values.shape)
    return (w * values).sum() / w.sum()


def pairwise_differences(x: Tensor) -> Tensor:
    """``x[..., i] - x[..., j]`` for all ordered pairs of a grouped (B, K) tensor, shaped (B, K, K)."""
    return x[..., :, None] - x[..., None, :]
