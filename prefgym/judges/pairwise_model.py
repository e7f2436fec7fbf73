"""A learned pairwise preference model (PairRM-style) and its trainer.

A one-label ``transformers`` sequence classifier reads one text holding the
context and both replies,

    "{context} {sep} {a} {sep} {b}",

(``sep`` is the tokenizer's separator token, or ``"[SEP]"`` if it has none) and
its logit ``l(c, a, b)`` is the log-odds that ``a`` beats ``b``. A raw model
need not be constant-sum, so the judge *symmetrises* it, scoring both orders:

    P(a > b | c) = 1/2 * (sigmoid(l(c, a, b)) + 1 - sigmoid(l(c, b, a))).

Then ``P(a > b) + P(b > a) = 1`` and ``P(a > a) = 1/2`` for any weights (up to
float32 round-off in the forward pass, about 1e-7).

:func:`train_pairwise_judge` fits it to preference pairs with binary
cross-entropy on both orders; :func:`tiny_pairwise_judge` builds a small model
from a config with a tokenizer trained on the fly, for tests and examples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from prefgym.judges.base import JudgeOutputError, PairwiseJudge
from prefgym.judges.reward_model import (
    _HFScorer,
    _read_judge_config,
    _write_judge_config,
    build_word_tokenizer,
    tiny_sequence_classifier,
)

__all__ = ["PairwiseModelJudge", "train_pairwise_judge", "tiny_pairwise_judge"]


class PairwiseModelJudge(PairwiseJudge):
    """``P(a > b | c)`` from a sequence classifier over ``"context [SEP] a [SEP] b"``, symmetrised.

    Parameters
    ----------
    model
        ``AutoModelForSequenceClassification`` with ``num_labels=1``.
    tokenizer
        Its tokenizer (without a pad token, EOS is used for padding).
    separator
        The marker between context and replies; defaults to the tokenizer's
        ``sep_token``, else the literal ``"[SEP]"``.
    batch_size
        Texts per forward pass.
    max_length, truncation
        Inputs longer than ``max_length`` tokens (default: the tokenizer's and
        model's limit) raise ``ValueError`` unless ``truncation=True``, which
        cuts them (from the tokenizer's ``truncation_side``: by default the end
        of reply ``b``).
    device
        Where inputs go; defaults to the model's device.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        separator: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        truncation: bool = False,
        device=None,
    ):
        self._scorer = _HFScorer(model, tokenizer, batch_size, max_length, truncation, device)
        self.model, self.tokenizer = model, tokenizer
        sep = separator if separator is not None else getattr(tokenizer, "sep_token", None)
        self.separator = sep if sep else "[SEP]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, separator={self.separator!r})"

    @property
    def max_length(self) -> int | None:
        return self._scorer.max_length

    def format(self, context: str, a: str, b: str) -> str:
        """The text the model reads for ``(context, a, b)``."""
        return f"{context} {self.separator} {a} {self.separator} {b}"

    def _texts(self, contexts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[str]:
        return [self.format(c, x, y) for c, x, y in zip(contexts, a, b, strict=True)]

    def logits(self, contexts: Sequence[str] | str, responses_a: Sequence[str],
               responses_b: Sequence[str]) -> np.ndarray:
        """The raw, unsymmetrised log-odds ``l(c, a, b)``, float64 ``(n,)``."""
        a, b = list(responses_a), list(responses_b)
        ctx = [contexts] * len(a) if isinstance(contexts, str) else list(contexts)
        return self._scorer.scores(self._texts(ctx, a, b))

    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        n = len(responses_a)
        # both orders in one deduplicated pass: identical texts get identical logits
        l = self._scorer.scores(self._texts(contexts + contexts, responses_a + responses_b,
                                            responses_b + responses_a))
        if not np.all(np.isfinite(l)):
            i = int(np.flatnonzero(~np.isfinite(l))[0]) % n
            raise JudgeOutputError(f"the pairwise model returned a non-finite logit for pair {i} "
                                   f"(a {responses_a[i][:40]!r}, b {responses_b[i][:40]!r})")
        s = expit(l)
        return 0.5 * (s[:n] + (1.0 - s[n:]))

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Save the model, tokenizer and judge settings to a folder (``from_pretrained`` reads it)."""
        os.makedirs(path, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        _write_judge_config(path, {"class": type(self).__name__, "separator": self.separator,
                                   "batch_size": self._scorer.batch_size,
                                   "max_length": self._scorer.max_length,
                                   "truncation": self._scorer.truncation})

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, model_kwargs: dict | None = None,
                        tokenizer_kwargs: dict | None = None, **judge_kwargs) -> PairwiseModelJudge:
        """Load a judge saved by :meth:`save_pretrained` (or any one-label classifier: a hub id or folder).

        Saved judge settings are restored; keyword arguments override them.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **(tokenizer_kwargs or {}))
        model = AutoModelForSequenceClassification.from_pretrained(name_or_path, **(model_kwargs or {}))
        cfg = _read_judge_config(name_or_path, cls.__name__) if os.path.isdir(name_or_path) else {}
        cfg.update(judge_kwargs)
        return cls(model.eval(), tokenizer, **cfg)


# ----------------------------------------------------------------------------- training
def _as_pairs(pairs) -> list[tuple[str, str, str, float]]:
    """``(context, a, b, P(a beats b))`` rows from triples, soft-labelled 4-tuples or a Dataset."""
    if hasattr(pairs, "column_names"):  # a datasets.Dataset
        missing = {"prompt", "chosen", "rejected"} - set(pairs.column_names)
        if missing:
            raise ValueError(f"the dataset needs columns prompt, chosen, rejected; missing {sorted(missing)}")
        rows: Iterable = zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], strict=True)
    else:
        rows = pairs
    out = []
    for i, row in enumerate(rows):
        row = tuple(row)
        if len(row) not in (3, 4):
            raise ValueError(f"pair {i} must be (context, chosen, rejected) or (context, a, b, p); got "
                             f"{len(row)} fields")
        bad = next((k for k in range(3) if not isinstance(row[k], str)), None)
        if bad is not None:
            raise ValueError(f"pair {i} field {bad} must be a string; got {type(row[bad]).__name__}")
        p = 1.0 if len(row) == 3 else float(row[3])
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"pair {i} label P(a beats b) = {p!r} must lie in [0, 1]")
        out.append((row[0], row[1], row[2], p))
    if not out:
        raise ValueError("no training pairs")
    return out


def train_pairwise_judge(
    judge: PairwiseModelJudge,
    pairs,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, list[float]]:
    """Fit a :class:`PairwiseModelJudge` to preference pairs; returns the loss history.

    The loss is binary cross-entropy on both orders of each pair: the logit
    ``l(c, a, b)`` targets ``p`` and ``l(c, b, a)`` targets ``1 - p``, so the
    model learns a constant-sum preference even before symmetrisation. AdamW,
    shuffled minibatches of ``batch_size`` pairs (``2 * batch_size`` texts).

    Parameters
    ----------
    pairs
        ``(context, chosen, rejected)`` triples (``p = 1``), ``(context, a, b, p)``
        4-tuples with a soft label ``p = P(a beats b)``, or a ``datasets.Dataset``
        with string columns ``prompt``, ``chosen``, ``rejected``.
    seed
        Seeds shuffling and any dropout; the global torch RNG is restored afterwards.
    callback
        Called as ``callback(epoch, {"loss": mean_epoch_loss})`` after each epoch.

    Returns
    -------
    dict
        ``{"loss": [mean loss per epoch], "step_loss": [loss per step]}``.

    Raises
    ------
    ValueError
        For malformed pairs or an over-long input (see the judge's ``truncation``).
    FloatingPointError
        If the loss becomes NaN or infinite.
    """
    import torch

    data = _as_pairs(pairs)
    if int(epochs) < 0 or int(batch_size) < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 0, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}")
    model, scorer = judge.model, judge._scorer
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "step_loss": []}
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for epoch in range(int(epochs)):
                perm = rng.permutation(len(data))
                losses, weights = [], []
                for s in range(0, len(data), int(batch_size)):
                    batch = [data[i] for i in perm[s:s + int(batch_size)]]
                    c, a, b, p = (list(x) for x in zip(*batch, strict=True))
                    texts = judge._texts(c + c, a + b, b + a)
                    target = torch.tensor(p + [1.0 - q for q in p], dtype=torch.float32, device=scorer.device)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(scorer.logits(texts), target)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}, "
                                                 f"step {s // int(batch_size)}; lower the learning rate")
                    opt.zero_grad()
                    loss.backward()
                    if max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                    opt.step()
                    history["step_loss"].append(float(loss.item()))
                    losses.append(float(loss.item()))
                    weights.append(len(batch))
                history["loss"].append(float(np.average(losses, weights=weights)))
                if callback is not None:
                    callback(epoch, {"loss": history["loss"][-1]})
    finally:
        model.train(was_training)
    return history


def tiny_pairwise_judge(
    corpus: Iterable[str] | None = None,
    tokenizer=None,
    *,
    arch: str = "bert",
    hidden_size: int = 32,
    num_layers: int = 1,
    num_heads: int = 2,
    max_length: int = 128,
    seed: int = 0,
    **judge_kwargs,
) -> PairwiseModelJudge:
    """A small untrained :class:`PairwiseModelJudge` built from a config (no downloads).

    Parameters
    ----------
    corpus
        Texts to build a word-level tokenizer from
        (:func:`~prefgym.judges.reward_model.build_word_tokenizer`; default: a
        small built-in English corpus). Ignored if ``tokenizer`` is given.
    tokenizer
        An existing tokenizer to use instead.
    arch, hidden_size, num_layers, num_heads
        The classifier (:func:`~prefgym.judges.reward_model.tiny_sequence_classifier`).
    max_length
        Token limit of the tokenizer and position embeddings.
    seed
        Initialisation seed.
    """
    if tokenizer is None:
        tokenizer = build_word_tokenizer(corpus, model_max_length=max_length)
    model = tiny_sequence_classifier(tokenizer, arch=arch, hidden_size=hidden_size, num_layers=num_layers,
                                     num_heads=num_heads, max_length=max_length, seed=seed)
    return PairwiseModelJudge(model, tokenizer, **judge_kwargs)
