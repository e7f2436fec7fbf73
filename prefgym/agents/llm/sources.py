"""Where a self-play iteration's responses come from: :class:`ResponseSource` and its two forms.

:class:`SampledResponses` samples ``K`` texts per prompt from the policy and judges every
pair; :class:`MenuResponses` scores a fixed menu of responses (enumerated exactly, or
sampled from the menu distribution). A source also gives the trainer the policy's
log-probabilities of the batch's responses, the win rates of a response against another
policy, and the policy's replies (``predict``). Multi-turn problems have their own source
(:class:`~prefgym.agents.llm.multiturn.MultiTurnMenuSource`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prefgym.agents.llm.algorithms import SelfPlayBatch
from prefgym.agents.llm.menu import MenuPolicy
from prefgym.agents.llm.timing import phase
from prefgym.llm.chat import prompt_text

__all__ = ["ResponseSource", "SampledResponses", "MenuResponses", "leave_one_out_weights"]


def _torch(x: np.ndarray | Sequence, dtype=torch.float32) -> Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _batch_to(batch: SelfPlayBatch, device: torch.device) -> SelfPlayBatch:
    for name in ("old_logp", "ref_logp", "win_matrix", "win_rate", "weights", "menu_index", "steps"):
        v = getattr(batch, name)
        if isinstance(v, Tensor):
            setattr(batch, name, v.to(device))
    batch.extra = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.extra.items()}
    return batch


def leave_one_out_weights(log_w: Tensor) -> Tensor:
    """Self-normalised weights over ``j != i`` for every ``i``: (B, K) log-weights -> (B, K, K)."""
    K = log_w.shape[-1]
    eye = torch.eye(K, dtype=torch.bool, device=log_w.device)
    lw = log_w[:, None, :].expand(-1, K, -1).masked_fill(eye, -math.inf)
    return torch.softmax(lw, dim=-1)


# ============================================================================ sources
class ResponseSource(ABC):
    """Where an iteration's responses come from and how they are scored (the dataset builder).

    A source fills a :class:`SelfPlayBatch` for a list of states, recomputes the
    group's log-probs under the current policy (or a snapshot), and estimates win
    rates of the group against another policy. A multi-turn source (states are
    conversation prefixes, ``batch.steps`` their turns) implements the same four methods.

    ``phase_times`` (a :class:`~prefgym.agents.llm.timing.PhaseTimes` or ``None``) is set by
    the trainer for each iteration; a source may charge its generation, judging and
    log-prob work to it (only observed, never changes a result).
    """

    phase_times = None

    @abstractmethod
    def collect(self, prompts: list[str], seed: int) -> SelfPlayBatch:
        """Responses to ``prompts`` from the current policy, judged."""

    @abstractmethod
    def logp(self, batch: SelfPlayBatch, requires_grad: bool = False, policy=None,
             mask: Tensor | None = None) -> Tensor:
        """(B, K) sequence log-probs of the batch's responses under the policy (or ``policy``).

        ``mask`` (B, K) bool, when given, names the responses to score; a source that
        scores per response skips the others, whose entries hold ``batch.old_logp`` as
        constants (a menu source scores the whole menu in one pass and ignores it).
        """

    @abstractmethod
    def win_rates_against(self, batch: SelfPlayBatch, opponent, seed: int,
                          greedy: bool = False) -> tuple[Tensor, Tensor | None]:
        """``P(y > opponent)`` per response (B, K); with ``greedy`` also for the greedy response (B,)."""

    def win_rates_mixture(self, batch: SelfPlayBatch, log_weights: Tensor) -> Tensor:
        """``P(y > q)`` with ``q ~ exp(log_weights)`` a reweighting of ``pi_t`` over the group (B, K).

        On an enumerated batch ``q = softmax(log_weights)`` exactly; on samples, ``q / pi_t ~
        exp(log_weights - old_logp)`` as self-normalised importance weights over the other
        ``K - 1`` responses of the group (leave-one-out, so a response never plays itself).
        """
        if batch.exact:
            q = torch.softmax(log_weights.float(), dim=-1)
            return (batch.win_matrix @ q[..., None])[..., 0]
        w = leave_one_out_weights((log_weights - batch.old_logp).float())
        return (batch.win_matrix * w).sum(-1)

    @abstractmethod
    def predict(self, prompts: list[str], deterministic: bool, seed: int | None) -> list[str]:
        """One response per prompt."""


class SampledResponses(ResponseSource):
    """``K`` samples per prompt from an :class:`~prefgym.llm.policy.LMPolicy`, all pairs judged.

    ``win_rate`` is each sample's average win rate against the other ``K - 1`` samples,
    an unbiased estimate of ``P(y > pi_t)`` (001 Sec. 4.2). Opponent win rates
    (previous iterate, magnet) average ``P(y_i > z_j)`` over ``K`` opponent samples ``z_j``.
    """

    def __init__(self, policy, judge, num_samples: int, batch_size: int | None = None):
        if int(num_samples) < 2:
            raise ValueError(f"self-play needs num_samples >= 2 responses per prompt; got {num_samples}")
        self.policy, self.judge, self.k, self.batch_size = policy, judge, int(num_samples), batch_size

    def collect(self, prompts, seed):
        from prefgym.llm.sampling import average_win_rates, win_rate_matrices

        K, B = self.k, len(prompts)
        with phase(self.phase_times, "generation"):
            gen = self.policy.generate(prompts, num_return_sequences=K, seed=seed, compute_ref=False)
        texts = [gen.texts[b * K:(b + 1) * K] for b in range(B)]
        resp = [[gen.response_ids[b * K + k] for k in range(K)] for b in range(B)]
        with phase(self.phase_times, "judging"):
            W = np.stack(win_rate_matrices(self.judge, [prompt_text(p) for p in prompts], texts))
        batch = SelfPlayBatch(prompts=list(prompts), prompt_ids=[gen.prompt_ids[b * K] for b in range(B)],
                              response_ids=resp, texts=texts, old_logp=torch.zeros(B, K), ref_logp=None,
                              win_matrix=_torch(W), win_rate=_torch(average_win_rates(W)),
                              steps=torch.ones(B))
        with phase(self.phase_times, "logprobs"):
            batch.old_logp = self.logp(batch)  # teacher forced: the same numbers the loss recomputes
            if self.policy.reference_model is not None:
                batch.ref_logp = self._sums(batch, self.policy, requires_grad=False, reference=True)
        batch.extra["lengths"] = gen.lengths.float().reshape(B, K)
        return batch

    @staticmethod
    def _rows(batch) -> tuple[list[Tensor], list[Tensor]]:
        K = len(batch.response_ids[0])
        rows_p = [batch.prompt_ids[b] for b in range(len(batch.prompts)) for _ in range(K)]
        return rows_p, [r for group in batch.response_ids for r in group]

    def _sums(self, batch, policy, requires_grad, reference=False):
        B, K = len(batch.prompts), len(batch.response_ids[0])
        rows_p, rows_r = self._rows(batch)
        lps = policy.sequence_logprobs(rows_p, rows_r, requires_grad=requires_grad, reference=reference,
                                       batch_size=self.batch_size)
        return torch.stack([lp.sum() for lp in lps]).reshape(B, K)

    def _masked_sums(self, batch, policy, requires_grad, mask: Tensor) -> Tensor:
        """:meth:`_sums` on the responses in ``mask`` only; ``old_logp`` (constants) elsewhere."""
        flat = mask.reshape(-1).cpu()
        rows_p, rows_r = self._rows(batch)
        keep = flat.nonzero().flatten().tolist()
        lps = policy.sequence_logprobs([rows_p[i] for i in keep], [rows_r[i] for i in keep],
                                       requires_grad=requires_grad, batch_size=self.batch_size)
        scored = torch.stack([lp.sum() for lp in lps])
        out = batch.old_logp.detach().to(device=scored.device, dtype=scored.dtype).reshape(-1).clone()
        out[flat.to(scored.device)] = scored
        return out.reshape(batch.shape)

    def logp(self, batch, requires_grad=False, policy=None, mask=None):
        """(B, K) sequence log-probs; fused with the sequential KLs an algorithm asked for (see below).

        When ``batch.extra["sequential_kl_targets"]`` names frozen models (``{name: policy
        or module}``, set by an algorithm with ``kl_estimator="token"``), a call with
        ``requires_grad=True`` on the policy itself computes, in the same teacher-forced
        pass, the (B, K) sequential KLs to them (:meth:`sequential_kl`) and leaves them in
        ``batch.extra["sequential_kl"] = {"logp": <the returned tensor>, "kl": {name: (B, K)}}``
        for the loss of the same optimiser step (which checks it got that very ``logp``).
        """
        targets = batch.extra.get("sequential_kl_targets") if requires_grad and policy is None else None
        if not targets:
            scorer = self.policy if policy is None else policy
            if mask is not None:
                return self._masked_sums(batch, scorer, requires_grad, mask)
            return self._sums(batch, scorer, requires_grad)
        B, K = batch.shape
        rows_p, rows_r = self._rows(batch)
        kl, lps = self.policy.sequential_kl(rows_p, rows_r, list(targets.values()), requires_grad=True,
                                            batch_size=self.batch_size, return_logprobs=True)
        logp = torch.stack([lp.sum() for lp in lps]).reshape(B, K)
        batch.extra["sequential_kl"] = {
            "logp": logp, "kl": {name: kl[:, m].reshape(B, K) for m, name in enumerate(targets)}}
        return logp

    def sequential_kl(self, batch, others: dict[str, Any], requires_grad: bool = False) -> dict[str, Tensor]:
        """Per-response sequential KL of the policy to each frozen model, ``{name: (B, K)}``.

        ``sum_t KL(pi_theta(.|[x, y_<t]) || q(.|[x, y_<t]))`` over the full vocabulary on the
        batch's sampled responses (000 Sec. 3.3; 003 App. D), one batched teacher-forced
        pass of the policy and of each ``q`` per ``batch_size`` rows
        (:meth:`~prefgym.llm.policy.LMPolicy.sequential_kl`). ``others`` maps names to an
        :class:`~prefgym.llm.policy.LMPolicy` (e.g. a trainer snapshot) or a module (e.g.
        the reference model).
        """
        B, K = batch.shape
        rows_p, rows_r = self._rows(batch)
        kl = self.policy.sequential_kl(rows_p, rows_r, list(others.values()), requires_grad=requires_grad,
                                       batch_size=self.batch_size)
        return {name: kl[:, m].reshape(B, K) for m, name in enumerate(others)}

    def win_rates_against(self, batch, opponent, seed, greedy=False):
        B, K = batch.shape
        with phase(self.phase_times, "generation"):
            z = opponent.generate(batch.prompts, num_return_sequences=K, seed=seed, compute_ref=False).texts
        ctx, a, b = [], [], []
        for r, x in enumerate(batch.prompts):
            for i in range(K):
                for j in range(K):
                    ctx.append(prompt_text(x))
                    a.append(batch.texts[r][i])
                    b.append(z[r * K + j])
        g_texts = None
        if greedy:
            with phase(self.phase_times, "generation"):
                g_texts = self.policy.generate(batch.prompts, seed=seed, do_sample=False,
                                               compute_ref=False).texts
            for r, x in enumerate(batch.prompts):
                for j in range(K):
                    ctx.append(prompt_text(x))
                    a.append(g_texts[r])
                    b.append(z[r * K + j])
        with phase(self.phase_times, "judging"):
            p = self.judge.prob(ctx, a, b)
        rates = _torch(p[: B * K * K].reshape(B, K, K).mean(-1))
        g = _torch(p[B * K * K:].reshape(B, K).mean(-1)) if greedy else None
        return rates, g

    def predict(self, prompts, deterministic, seed):
        return self.policy.generate(prompts, seed=seed, do_sample=not deterministic, compute_ref=False).texts


class MenuResponses(ResponseSource):
    """Responses from a :class:`~prefgym.agents.llm.menu.MenuPolicy`: the whole menu, or ``K`` draws from it.

    ``exact=True`` enumerates the ``N`` responses with ``weights = pi_t`` and exact win
    rates ``P(y > pi_t) = sum_j P(y > y_j) pi_t(y_j)``; opponents (previous iterate, magnet,
    geometric mixture) are exact too. ``exact=False`` draws ``K`` menu indices from
    ``pi_t`` and estimates everything from the samples, like :class:`SampledResponses`.
    """

    def __init__(self, menu: MenuPolicy, judge, exact: bool = True, num_samples: int = 4):
        if not exact and int(num_samples) < 2:
            raise ValueError(f"sampling from a menu needs num_samples >= 2; got {num_samples}")
        self.menu, self.judge, self.exact, self.k = menu, judge, bool(exact), int(num_samples)

    def _menu_win(self, prompts) -> Tensor:
        from prefgym.llm.sampling import win_rate_matrices

        ctx = [prompt_text(p) for p in prompts]
        return _torch(np.stack(win_rate_matrices(self.judge, ctx, [self.menu.responses] * len(prompts))))

    def collect(self, prompts, seed):
        menu, B, N = self.menu, len(prompts), self.menu.n
        lp = menu.log_probs(prompts)
        full_w = self._menu_win(prompts)
        if self.exact:
            idx = torch.arange(N).expand(B, N)
            W = full_w
            weights = lp.exp()
            win_rate = (full_w @ weights[..., None])[..., 0]
        else:
            gen = torch.Generator().manual_seed(int(seed))
            idx = menu.sample(prompts, self.k, generator=gen, log_probs=lp)
            W = torch.stack([full_w[b][idx[b]][:, idx[b]] for b in range(B)])
            weights = None
            win_rate = (W.sum(-1) - torch.diagonal(W, dim1=-2, dim2=-1)) / (self.k - 1)
        ref = None
        if menu.policy.reference_model is not None:
            ref = menu.log_probs(prompts, reference=True).gather(-1, idx)
        batch = SelfPlayBatch(
            prompts=list(prompts),
            prompt_ids=menu.policy.encode_prompts(prompts),
            response_ids=[[menu.response_ids[i] for i in row] for row in idx.tolist()],
            texts=[[menu.responses[i] for i in row] for row in idx.tolist()],
            old_logp=lp.gather(-1, idx), ref_logp=ref, win_matrix=W, win_rate=win_rate, weights=weights,
            menu_index=idx, steps=torch.ones(B))
        batch.extra.update(menu_logp=lp, menu_win_matrix=full_w)
        return batch

    def logp(self, batch, requires_grad=False, policy=None, mask=None):
        lp = self.menu.log_probs(batch.prompts, requires_grad=requires_grad, policy=policy)
        return lp.gather(-1, batch.menu_index.to(lp.device))

    def win_rates_against(self, batch, opponent, seed, greedy=False):
        q = self.menu.log_probs(batch.prompts, policy=opponent).exp()
        full_w = batch.extra["menu_win_matrix"].cpu()
        full = (full_w @ q[..., None])[..., 0]  # exact P(y > opponent) for every menu item
        idx = batch.menu_index.cpu()
        g = None
        if greedy:  # ReMax on a menu: the most probable item
            g = full.gather(-1, batch.extra["menu_logp"].cpu().argmax(-1, keepdim=True))[:, 0]
        return full.gather(-1, idx), g

    def predict(self, prompts, deterministic, seed):
        lp = self.menu.log_probs(prompts)
        if deterministic:
            idx = lp.argmax(-1)
        else:
            gen = None if seed is None else torch.Generator().manual_seed(int(seed))
            idx = self.menu.sample(prompts, 1, generator=gen, log_probs=lp)[:, 0]
        return [self.menu.responses[i] for i in idx.tolist()]


# ============================================================================ trainer
