"""The one interface every text judge implements: ``P(response A beats B | context)``.

A judge is the language-game counterpart of a
:class:`~prefgym.preferences.PreferenceModel`: it scores a batch of
``(context, a, b)`` triples. Subclasses implement :meth:`PairwiseJudge._prob`;
the public :meth:`PairwiseJudge.prob` checks the batch and the judge's output, so
a NaN or an out-of-range probability is an error, never a silent wrong reward.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from prefgym.errors import InvalidArgumentError

__all__ = ["PairwiseJudge", "JudgeOutputError"]


class JudgeOutputError(InvalidArgumentError):
    """A judge returned something that is not a probability."""


def _as_probabilities(raw, judge: str) -> np.ndarray:
    """The judge's raw output as a flat float64 array, or a JudgeOutputError saying what it returned."""
    if hasattr(raw, "detach"):  # a torch tensor
        raw = raw.detach().cpu().numpy()
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError):
        raise JudgeOutputError(f"{judge} returned {type(raw).__name__} {raw!r:.80}, not an array of "
                               "probabilities") from None
    if arr.dtype.kind not in "biuf":
        sample = arr.reshape(-1)[:1].tolist()
        raise JudgeOutputError(f"{judge} returned values of dtype {arr.dtype} (e.g. {sample!r:.60}); a "
                               "judge must return real probabilities in [0, 1], not strings or objects")
    return arr.astype(np.float64).reshape(-1)


class PairwiseJudge(ABC):
    """``P(a beats b | context)`` for batches of text triples.

    Implementations must be *constant-sum*: ``prob(c, a, b) + prob(c, b, a) = 1``
    (a learned judge may enforce it by symmetrising, see its docs).
    """

    @abstractmethod
    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        """Unchecked probabilities, shape ``(n,)``."""

    def prob(
        self, contexts: Sequence[str] | str, responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> np.ndarray:
        """``P(responses_a[i] beats responses_b[i] | contexts[i])``, shape ``(n,)``.

        A single context string is shared by the whole batch.

        Raises
        ------
        InvalidArgumentError
            If the batch lengths differ or an entry is not a string.
        JudgeOutputError
            If the judge returns something that is not a real number (strings, None,
            complex), NaN, or a value outside ``[0, 1]`` (naming the pair).
        """
        a, b = list(responses_a), list(responses_b)
        ctx = [contexts] * len(a) if isinstance(contexts, str) else list(contexts)
        if not (len(ctx) == len(a) == len(b)):
            raise InvalidArgumentError(f"contexts, responses_a and responses_b must have equal lengths; "
                             f"got {len(ctx)}, {len(a)}, {len(b)}")
        for name, seq in (("contexts", ctx), ("responses_a", a), ("responses_b", b)):
            bad = next((i for i, x in enumerate(seq) if not isinstance(x, str)), None)
            if bad is not None:
                raise InvalidArgumentError(f"{name}[{bad}] must be a string; got {type(seq[bad]).__name__}")
        if not a:
            return np.zeros(0)
        p = _as_probabilities(self._prob(ctx, a, b), type(self).__name__)
        if p.shape != (len(a),):
            raise JudgeOutputError(f"{type(self).__name__} returned {p.shape[0]} scores for {len(a)} pairs")
        bad = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
        if bad.size:
            i = int(bad[0])
            raise JudgeOutputError(
                f"{type(self).__name__} returned P = {float(p[i])} for pair {i} (context {ctx[i][:60]!r}, "
                f"a {a[i][:40]!r}, b {b[i][:40]!r}); a preference must be a probability in [0, 1]"
            )
        return p

    def __call__(self, contexts, responses_a, responses_b) -> np.ndarray:
        return self.prob(contexts, responses_a, responses_b)

    def win_matrix(self, context: str, responses: Sequence[str]) -> np.ndarray:
        """``W[i, j] = P(responses[i] beats responses[j] | context)`` in one batched call."""
        r = list(responses)
        n = len(r)
        i, j = np.triu_indices(n, k=1)
        W = np.full((n, n), 0.5)
        if i.size:
            p = self.prob(context, [r[k] for k in i], [r[k] for k in j])
            W[i, j], W[j, i] = p, 1.0 - p
        return W

    def judge(self, prompts: Sequence[str], completions: Sequence[Sequence[str]],
              shuffle_order: bool = False) -> list[int]:
        """TRL's ``BasePairwiseJudge.judge``: index (0 or 1) of the preferred completion of each pair.

        Ties (``P = 1/2``) go to the first. ``shuffle_order`` is accepted for TRL's signature;
        a constant-sum judge does not depend on the order.
        """
        pairs = [tuple(c) for c in completions]
        bad = next((i for i, c in enumerate(pairs) if len(c) != 2), None)
        if bad is not None:
            raise ValueError(f"completions[{bad}] must be a pair of two strings; got {len(pairs[bad])} items")
        p = self.prob(list(prompts), [c[0] for c in pairs], [c[1] for c in pairs])
        return [0 if x >= 0.5 else 1 for x in p]

    def sample(self, contexts, responses_a, responses_b, rng: np.random.Generator) -> np.ndarray:
        """Bernoulli outcomes (1.0 = a wins), as a human rater's label."""
        p = self.prob(contexts, responses_a, responses_b)
        return (rng.random(p.shape) < p).astype(np.float64)
