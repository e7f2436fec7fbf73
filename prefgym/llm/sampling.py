"""Sampling utilities for language-game agents: K replies per state, win-rate matrices, best/worst picks.

The self-play estimators of 001 (Sec. 4.2) and the Iterative DPO baseline draw
``K`` replies per prompt, let a pairwise judge compare every pair, and rank each
reply by its *average win rate against the other samples*:

.. math:: \\bar w_i = \\frac{1}{K - 1} \\sum_{j \\ne i} P(y_i \\succ y_j \\mid x).

The best and worst replies by that score form a (chosen, rejected) pair. Every
function here batches the judge: one :meth:`~prefgym.judges.base.PairwiseJudge.prob`
call per matrix, and one call for all pairs of all contexts in the ``*_batch``
forms. The judge's output checks apply throughout, so a NaN or out-of-range score
raises :class:`~prefgym.judges.base.JudgeOutputError`, never a silent wrong reward.

Nothing here imports ``transformers``; an :class:`~prefgym.llm.policy.LMPolicy`
is recognised only if that module is already loaded.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the judges sit above this layer
    from prefgym.judges.base import PairwiseJudge

__all__ = [
    "sample_k",
    "win_rate_matrix",
    "win_rate_matrices",
    "average_win_rates",
    "best_and_worst",
    "best_and_worst_batch",
    "load_prompts",
]


def _is_lm_policy(policy) -> bool:
    mod = sys.modules.get("prefgym.llm.policy")
    return mod is not None and isinstance(policy, mod.LMPolicy)


def sample_k(policy, prompts: Sequence[str], k: int, seed: int | None = None) -> list[list[str]]:
    """``k`` sampled replies to each prompt: ``out[i][j]`` is sample ``j`` for ``prompts[i]``.

    Parameters
    ----------
    policy
        An :class:`~prefgym.llm.policy.LMPolicy` (one batched ``generate`` call with
        ``num_return_sequences=k``) or any :class:`~prefgym.llm.base.TextGenerator`
        (``k`` calls of ``generate_text`` on the whole batch, sharing one
        ``numpy`` generator seeded with ``seed``).
    prompts
        Non-empty list of prompt strings.
    k
        Samples per prompt, ``>= 1``.
    seed
        Seed of the sampling; ``None`` is unseeded.

    Raises
    ------
    ValueError
        Empty prompt list, ``k < 1``, or a generator that returns the wrong number
        of replies or a non-string.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not a single string; wrap it in a list")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts: the prompt list is empty")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    k = int(k)
    if _is_lm_policy(policy):
        texts = policy.generate(prompts, num_return_sequences=k, seed=seed, compute_ref=False).texts
        return [texts[i * k:(i + 1) * k] for i in range(len(prompts))]
    if not callable(getattr(policy, "generate_text", None)):
        raise TypeError(f"policy must be an LMPolicy or a TextGenerator; got {type(policy).__name__}")
    rng = np.random.default_rng(seed)
    out: list[list[str]] = [[] for _ in prompts]
    for _ in range(k):
        replies = list(policy.generate_text(prompts, rng=rng))
        if len(replies) != len(prompts):
            raise ValueError(f"{type(policy).__name__}.generate_text returned {len(replies)} replies for "
                             f"{len(prompts)} prompts")
        for i, r in enumerate(replies):
            if not isinstance(r, str):
                raise ValueError(f"{type(policy).__name__}.generate_text returned a {type(r).__name__} for "
                                 f"prompt {i}; replies must be strings")
            out[i].append(r)
    return out


def _check_judge(judge) -> None:
    # duck-typed so that this layer imports nothing from ``prefgym.judges`` (which sits above it)
    if not all(callable(getattr(judge, m, None)) for m in ("prob", "win_matrix")):
        raise TypeError(f"judge must be a PairwiseJudge (prob and win_matrix methods whose checks catch NaN "
                        f"scores); got {type(judge).__name__}")


def _check_responses(responses: Sequence[str], where: str, min_k: int = 1) -> list[str]:
    if isinstance(responses, str):
        raise TypeError(f"{where}: responses must be a sequence of strings, not a single string")
    r = list(responses)
    if len(r) < min_k:
        raise ValueError(f"{where}: need at least {min_k} responses; got {len(r)}")
    return r


def win_rate_matrix(judge: PairwiseJudge, context: str, responses: Sequence[str]) -> np.ndarray:
    """``W[i, j] = P(responses[i] beats responses[j] | context)``, shape ``(k, k)``, diagonal 1/2.

    One batched judge call over the ``k (k - 1) / 2`` unordered pairs (the judge is
    constant-sum, so ``W[j, i] = 1 - W[i, j]``).
    """
    _check_judge(judge)
    return judge.win_matrix(context, _check_responses(responses, "win_rate_matrix"))


def win_rate_matrices(judge: PairwiseJudge, contexts: Sequence[str],
                      responses: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """:func:`win_rate_matrix` for many contexts in ONE judge call over all their pairs.

    Parameters
    ----------
    contexts
        One context per group.
    responses
        ``responses[c]`` are the replies to ``contexts[c]``; group sizes may differ.

    Returns
    -------
    list of ndarray
        ``W_c`` of shape ``(k_c, k_c)`` per context.
    """
    _check_judge(judge)
    if isinstance(contexts, str):
        raise TypeError("contexts must be a sequence of strings; for one context use win_rate_matrix")
    contexts = list(contexts)
    groups = [_check_responses(r, f"responses[{c}]") for c, r in enumerate(responses)]
    if len(groups) != len(contexts):
        raise ValueError(f"got {len(contexts)} contexts but {len(groups)} response groups")
    ctx, a, b, spans = [], [], [], []
    for c, (x, r) in enumerate(zip(contexts, groups, strict=True)):
        i, j = np.triu_indices(len(r), k=1)
        spans.append((c, i, j, len(ctx)))
        ctx += [x] * i.size
        a += [r[t] for t in i]
        b += [r[t] for t in j]
    p = judge.prob(ctx, a, b) if ctx else np.zeros(0)
    out = []
    for c, i, j, start in spans:
        W = np.full((len(groups[c]), len(groups[c])), 0.5)
        q = p[start:start + i.size]
        W[i, j], W[j, i] = q, 1.0 - q
        out.append(W)
    return out


def average_win_rates(W: np.ndarray) -> np.ndarray:
    """Average win rate of each sample against the *other* samples: ``(sum_j W[i, j] - W[i, i]) / (k - 1)``.

    With a judge's matrix (diagonal 1/2) this is ``(W.sum(1) - 0.5) / (k - 1)``.
    Accepts a batch ``(..., k, k)``; needs ``k >= 2``.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim < 2 or W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W must be square (k, k) or (..., k, k); got shape {W.shape}")
    k = W.shape[-1]
    if k < 2:
        raise ValueError(f"average win rates need at least 2 samples; got k = {k}")
    if not np.all(np.isfinite(W)):
        raise ValueError("W contains NaN or infinite entries")
    return (W.sum(-1) - np.diagonal(W, axis1=-2, axis2=-1)) / (k - 1)


def best_and_worst(judge: PairwiseJudge, context: str,
                   responses: Sequence[str]) -> tuple[int, int, np.ndarray]:
    """Indices of the replies with the highest and lowest average win rate, and the rates (001 Sec. 4.2).

    Ties go to the lowest index. When every reply ties (e.g. all identical),
    ``best == worst``; a DPO pair built from it carries no signal, so callers
    usually skip it.

    Returns
    -------
    (best_idx, worst_idx, avg_win_rates)
        ``avg_win_rates`` has shape ``(k,)``.
    """
    r = _check_responses(responses, "best_and_worst", min_k=2)
    avg = average_win_rates(win_rate_matrix(judge, context, r))
    return int(np.argmax(avg)), int(np.argmin(avg)), avg


def best_and_worst_batch(judge: PairwiseJudge, contexts: Sequence[str], responses: Sequence[Sequence[str]]
                         ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """:func:`best_and_worst` for many contexts with ONE judge call over all pairs of all contexts.

    Returns
    -------
    (best_idx, worst_idx, avg_win_rates)
        Integer arrays of shape ``(n_contexts,)`` and one ``(k_c,)`` array of rates per context.
    """
    groups = [_check_responses(r, f"best_and_worst_batch: responses[{c}]", min_k=2)
              for c, r in enumerate(responses)]
    avgs = [average_win_rates(W) for W in win_rate_matrices(judge, contexts, groups)]
    best = np.array([int(np.argmax(a)) for a in avgs], dtype=np.int64)
    worst = np.array([int(np.argmin(a)) for a in avgs], dtype=np.int64)
    return best, worst, avgs


def load_prompts(path: str | Path) -> list[str]:
    """Read prompts from a file: ``.jsonl`` (one JSON string or ``{"prompt": ...}`` per line) or plain text.

    A plain-text file holds one prompt per non-blank line, with ``\\n`` written as
    the two characters backslash-n (so dialogue prompts fit on one line).

    Raises
    ------
    ValueError
        If the file holds no prompt (naming the file), or a JSONL line is not a
        string or an object with a string ``"prompt"`` (naming the line).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    prompts: list[str] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if isinstance(item, dict):
                item = item.get("prompt")
            if not isinstance(item, str):
                raise ValueError(f"{path}:{n}: expected a JSON string or an object with a string 'prompt'")
            prompts.append(item)
    else:
        prompts = [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {path} is empty: it holds no prompt")
    return prompts
