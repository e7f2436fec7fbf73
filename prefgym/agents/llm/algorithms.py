"""Self-play algorithms for the LM trainer: how each builds its iteration's data and which loss it takes.

The shared loop (:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer`) samples (or
enumerates) ``K`` responses per state, lets the judge compare them and fills a
:class:`SelfPlayBatch` with the grouped quantities every rule needs:

* ``old_logp`` ``log pi_t(y)`` (B, K), ``ref_logp`` ``log pi_ref(y)`` (B, K) when a
  reference exists;
* ``win_matrix`` ``P(y_i > y_j)`` (B, K, K) and ``win_rate``, an estimate of
  ``P(y_i > pi_t)`` (B, K): the average over the *other* samples (001 Sec. 4.2), or the
  exact ``sum_j P(y_i > y_j) pi_t(y_j)`` when a menu is enumerated;
* ``weights`` (B, K): ``None`` for samples (already distributed as ``pi_t``), or ``pi_t``
  itself for an enumerated menu, so that ``weighted_mean`` is the exact expectation.

An algorithm then adds what it alone needs (:meth:`SelfPlayAlgorithm.prepare`: win
rates against the previous iterate, the magnet or a geometric mixture; best/worst
pairs), returns its loss on the current log-probs (:meth:`SelfPlayAlgorithm.loss`,
called once per optimiser step) and refreshes its frozen models
(:meth:`SelfPlayAlgorithm.end_iteration`).

===========  =============================================  =========================================
algorithm    iteration data                                 loss (:mod:`.losses`); tabular rule
===========  =============================================  =========================================
``omwu``     ``P(y > pi_t)``, ``P(y > pi_{t-1})`` (previous  ``omwu_loss`` grouped, base ``pi_t``;
             iterate kept frozen)                           ``optimistic_step`` (002 Sec. 5.2)
``ompo``     the same, per state ``s_h`` with turn ``h``    ``ompo_loss`` (001 Alg. 2; here H = 1)
``sppo``     ``P(y > pi_t)``                                ``sppo_loss``; ``mirror_step``
``mpo``      ``P(y > opponent)``, magnet refreshed every    ``mpo_loss`` (000 Alg. 1);
             ``refresh_every`` iterations, eta annealed     ``magnetic_step`` + magnet refresh
``nash_md``  ``P(y > pi_t^(1-b) pi_ref^b)``, b = eta tau    ``nash_md_loss``; ``regularized_step``
``spo``      all pairs, soft (judge) or Bernoulli labels    ``spo_loss`` (003 Eq. 9/11) + beta KL;
                                                            minimiser ``Softmax(r / alpha)``
``dpo``      best vs worst of the group by win rate         ``dpo_loss`` (iterative DPO, 001 B.3)
``ipo``      best vs worst of the group                     ``ipo_loss`` (iterative IPO)
===========  =============================================  =========================================

``aihf_dpo`` (:class:`AIHFAlgorithm`) adds demonstrations ``(s^E, a^E)`` given at
construction to DPO's best-vs-worst pairs (or to a fixed preference set): AIHF-DPO
(``aihf_dpo_loss``, 004 Eq. 10) or, with ``variant="self_play"``, Self-Play AIHF
(``self_play_aihf_loss``, 004 Eq. 11) whose demonstration term contrasts ``a^E`` with a
sample of ``pi_t`` at ``s^E``.

Per-state (multi-turn) use: a batch row is a *state* ``s_h`` (a prompt or a
conversation prefix) and ``steps`` holds its turn ``h``; nothing here assumes single
prompts except OMPO's default ``horizon = 1``. A multi-turn collector fills ``steps``
and the win rates with the continuation estimates of 001 Eq. (2) and reuses these
classes unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from prefgym.agents.llm.losses import (
    LossOutput,
    aihf_dpo_loss,
    dpo_loss,
    ipo_loss,
    mpo_loss,
    mpo_rt_loss,
    mpo_rt_reward,
    ompo_loss,
    ompo_q_estimate,
    self_play_aihf_loss,
    sequence_kl,
    slic_hf_loss,
    spo_best_of_n_loss,
    spo_loss,
    spo_ranked_loss,
    sppo_loss,
)
from prefgym.algorithms import SPECS
from prefgym.algorithms.rules import regularized_step
from prefgym.algorithms.spec import FixedInputs, magnet_refresh_due

__all__ = [
    "SelfPlayBatch",
    "SelfPlayAlgorithm",
    "OMPOAlgorithm",
    "SPPOAlgorithm",
    "MPOAlgorithm",
    "SPOAlgorithm",
    "DPOAlgorithm",
    "IPOAlgorithm",
    "SLiCHFAlgorithm",
    "AIHFAlgorithm",
    "exact_kl_rows",
]


@dataclass
class SelfPlayBatch:
    """One iteration's data: ``B`` states with ``K`` responses each (see the module docstring).

    Attributes
    ----------
    prompts
        The ``B`` states (prompts or conversation prefixes).
    prompt_ids
        Their token ids (1-D ``LongTensor`` each).
    response_ids
        ``response_ids[b][k]``: token ids of response ``k`` to state ``b``.
    texts
        Decoded responses, ``texts[b][k]``.
    old_logp
        (B, K) ``log pi_t(y | s)`` (menu-normalised for a menu policy).
    ref_logp
        (B, K) reference log-probs, or ``None`` without a reference.
    win_matrix
        (B, K, K) ``P(y_i > y_j | s)`` from the judge.
    win_rate
        (B, K) estimate of ``P(y_i > pi_t | s)``.
    weights
        (B, K) ``pi_t`` over an enumerated menu (exact expectations), or ``None`` for samples.
    menu_index
        (B, K) menu item of each response (menu policies only).
    steps
        (B,) turn ``h`` of each state (1-based; all ones for single-turn prompts).
    extra
        What :meth:`SelfPlayAlgorithm.prepare` adds.
    """

    prompts: list[str]
    prompt_ids: list[Tensor]
    response_ids: list[list[Tensor]]
    texts: list[list[str]]
    old_logp: Tensor
    ref_logp: Tensor | None
    win_matrix: Tensor
    win_rate: Tensor
    weights: Tensor | None = None
    menu_index: Tensor | None = None
    steps: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """Whether the group enumerates a menu (``weights = pi_t``)."""
        return self.weights is not None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.old_logp.shape)  # type: ignore[return-value]


def exact_kl_rows(logp: Tensor, q_logp: Tensor) -> Tensor:
    """``KL(pi_theta || q)`` per row of an enumerated menu, (B,), differentiable in ``logp``.

    ``logp`` and ``q_logp`` are normalised (B, N) log-probabilities; ``q`` is detached.
    """
    return (logp.exp() * (logp - q_logp.detach())).sum(dim=-1)


def _expand(x: Tensor, like: Tensor) -> Tensor:
    return x[:, None].expand_as(like)


KLEstimator = Literal["sequence", "token"]


def _check_kl_estimator(kl_estimator: str) -> None:
    if kl_estimator not in ("sequence", "token"):
        raise ValueError(f"kl_estimator must be 'sequence' or 'token'; got {kl_estimator!r}")


def _request_sequential_kl(trainer, batch: SelfPlayBatch, targets: dict[str, Any], algorithm: str) -> None:
    """Ask the source for the token-level (sequential) KLs to ``targets`` in each step's policy pass.

    Raises on a menu policy: its distribution is the softmax over the menu, whose KL is
    exact on an enumerated menu (``batch.exact``) and sequence-level on menu samples,
    while the sequential KL measures the free-running LM over its whole vocabulary (a
    different quantity, with a different regularised optimum).
    """
    if batch.exact or getattr(trainer, "is_menu", False):
        raise ValueError(f"{algorithm}: kl_estimator='token' applies to responses sampled from an LMPolicy; "
                         "a MenuPolicy's KL is exact on an enumerated menu (and sequence-level on menu "
                         "samples), so use kl_estimator='sequence' with a menu")
    if not callable(getattr(trainer.source, "sequential_kl", None)):
        raise ValueError(f"{algorithm}: kl_estimator='token' needs a response source with a "
                         f"sequential_kl method (SampledResponses); {type(trainer.source).__name__} has none")
    batch.extra["sequential_kl_targets"] = targets


def _sequential_kls(trainer, batch: SelfPlayBatch, logp: Tensor) -> dict[str, Tensor]:
    """``{name: (B, K)}`` sequential KLs of this step, with grad (000 Sec. 3.3; 003 App. D).

    Taken from the policy pass that produced ``logp`` when the source fused them
    (``SampledResponses.logp``), else computed by one more teacher-forced pass.
    """
    targets = batch.extra["sequential_kl_targets"]
    fused = batch.extra.pop("sequential_kl", None)
    if not targets:  # e.g. MPO with alpha = 0 and no trust region: nothing to estimate
        return {}
    if fused is not None and fused["logp"] is logp:
        return fused["kl"]
    return trainer.source.sequential_kl(batch, targets, requires_grad=True)


@dataclass
class SelfPlayAlgorithm:
    """Base class: hyper-parameters as dataclass fields, plus the three hooks of the loop.

    Class attributes
    ----------------
    name
        Registry key (``LLM_AGENTS``).
    snapshots
        Frozen copies of the policy the algorithm keeps (``"previous"``, ``"magnet"``);
        the trainer creates them from the initial policy, saves and restores them.
    requires_reference
        Whether the policy must carry a reference model.
    """

    name: ClassVar[str] = ""
    snapshots: ClassVar[tuple[str, ...]] = ()
    requires_reference: ClassVar[bool] = False

    def hparams(self) -> dict[str, Any]:
        """The dataclass fields (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def needs_reference(self) -> bool:
        return self.requires_reference

    def prepare(self, trainer, batch: SelfPlayBatch, iteration: int) -> None:
        """Add algorithm-specific data to ``batch.extra`` (called once, before the optimiser steps)."""

    def scored_responses(self, batch: SelfPlayBatch) -> Tensor | None:
        """(B, K) bool mask of the responses whose current log-probs :meth:`loss` reads, or ``None`` (all).

        The trainer scores (teacher-forces) only these at each optimiser step; the other
        entries of ``logp`` hold their iteration-start values ``old_logp`` as constants.
        Called once per iteration, after :meth:`prepare`.
        """
        return None

    def loss(self, trainer, batch: SelfPlayBatch, logp: Tensor, iteration: int) -> LossOutput:
        """The loss on the current (B, K) log-probs ``logp`` (with grad)."""
        raise NotImplementedError

    def end_iteration(self, trainer, iteration: int) -> None:
        """Called after the optimiser steps of ``iteration`` (0-based)."""

    def exact_step(self, batch: SelfPlayBatch) -> Tensor | None:
        """Unnormalised log-policy of the tabular rule's step from ``pi_t`` on a menu, or ``None``.

        The trainer logs ``step_kl = KL(exact step || pi_{t+1})`` with it: how closely the
        iteration's optimiser steps realise the rule (``None``: no closed form, e.g. DPO).
        """
        return None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state that the hyper-parameters do not determine."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""


# ------------------------------------------------------------------ optimistic rules
@dataclass
class _Optimistic(SelfPlayAlgorithm):
    """Shared data of OMWU and OMPO: win rates against ``pi_t`` and the frozen ``pi_{t-1}``."""

    snapshots: ClassVar[tuple[str, ...]] = ("previous",)

    def __post_init__(self) -> None:
        self._has_previous = False

    def prepare(self, trainer, batch: SelfPlayBatch, iteration: int) -> None:
        prev = None
        if self._has_previous:  # P(y > pi_{t-1}); None at the first iteration (pi_0 = pi_1)
            prev, _ = trainer.source.win_rates_against(batch, trainer.snapshot("previous"),
                                                       seed=trainer.iteration_seed(iteration, "previous"))
        batch.extra["prev_win_rate"] = prev
        trainer.refresh_snapshot("previous")  # pi_t is the next iteration's pi_{t-1}
        self._has_previous = True

    def state_dict(self) -> dict[str, Any]:
        return {"has_previous": self._has_previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._has_previous = bool(state.get("has_previous", False))


@dataclass
class OMPOAlgorithm(_Optimistic):
    """OMPO practical regression (001 Alg. 2) at the states of the batch.

    ``(log pi(a|s) - log pi_t(a|s) - beta Q_hat + log Z_h)^2`` with the optimistic one-step
    ``Q_hat = 2 P(a > pi_t) - P(a > pi_{t-1})`` (001 Eq. 2), expectation over ``a ~ pi_t``.
    ``horizon = 1`` is the single-turn case (= SPPO with optimism); a multi-turn collector
    sets ``batch.steps`` and a longer horizon.

    Parameters
    ----------
    beta
        Step size.
    horizon
        ``H``; ``log Z_h = beta (H - h + 1) / 2`` unless ``log_z`` is given.
    log_z
        Overrides the constant ``log Z`` (001 App. G.2 uses 0.5).
    """

    name: ClassVar[str] = "ompo"
    beta: float = 1.0
    horizon: int = 1
    log_z: float | None = None

    def exact_step(self, batch):
        prev = batch.extra["prev_win_rate"]  # None at the first iteration: pi_0 = pi_1
        payoffs = {"current": batch.win_rate, "previous": batch.win_rate if prev is None else prev}
        return SPECS["ompo"].step(FixedInputs(batch.old_logp, self.beta, payoffs), None)  # H = 1: OMWU's step

    def loss(self, trainer, batch, logp, iteration):
        q_hat = ompo_q_estimate(batch.win_rate, batch.extra["prev_win_rate"])  # 001 Eq. (2), one step
        steps = batch.steps if batch.steps is not None else torch.ones(logp.shape[0])
        return ompo_loss(logp, batch.old_logp, q_hat, beta=self.beta, horizon=self.horizon,
                         step=steps.to(logp.device)[:, None], log_z=self.log_z, weights=batch.weights)


# ------------------------------------------------------------------ mirror descent
@dataclass
class SPPOAlgorithm(SelfPlayAlgorithm):
    """SPPO (Wu et al. 2024; 002 App. D.2): regress ``log pi/pi_t`` on ``eta (P(y > pi_t) - 1/2)``.

    Parameters
    ----------
    eta
        Mirror-descent step.
    log_z
        ``log Z`` (default ``eta / 2``).
    """

    name: ClassVar[str] = "sppo"
    eta: float = 1.0
    log_z: float | None = None

    def exact_step(self, batch):
        return SPECS["sppo"].step(FixedInputs(batch.old_logp, self.eta, {"current": batch.win_rate}), None)

    def loss(self, trainer, batch, logp, iteration):
        return sppo_loss(logp, batch.old_logp, batch.win_rate, eta=self.eta, log_z=self.log_z,
                         weights=batch.weights)


@dataclass
class MPOAlgorithm(SelfPlayAlgorithm):
    """Magnetic Preference Optimization (000 Alg. 1, App. A.1).

    Reward ``R = P(y_1 > y_2)`` with ``y_2`` from the opponent, advantage ``A = R - b``, loss
    ``-A log pi_theta + alpha KL(pi_theta || magnet) + (1/eta_k) KL(pi_theta || pi_k)``
    (:func:`~prefgym.agents.llm.losses.mpo_loss`), the magnet set to the current
    iterate every ``refresh_every`` iterations (000 Alg. 1 line 16).

    Two opponents:

    * ``"magnet"`` (default): ``y_2 ~ pi_theta'``, the frozen magnet, as 000 Eqs. (7)-(8)
      and Alg. 1 line 4 print it ("we simultaneously replace both the opponent and the
      reference policy", 000 Sec. 3.3). On an enumerated menu the iteration's exact step
      is then ``rules.magnetic_step`` with the payoff ``P(. > magnet)``; within a period it
      contracts to ``magnet exp(P magnet / alpha)``, so across long periods the magnets
      follow multiplicative weights with step ``1 / alpha`` (no last-iterate guarantee).
    * ``"current"``: ``y_2 ~ pi_t`` (the group's own win rates), i.e. MMD on the game
      (000 Eq. 4) with magnet refresh, the rule of the tabular
      :class:`~prefgym.agents.MPO` and of 000 Thms 3.4 / 3.7.

    Estimators: on samples, by default (``kl_estimator="sequence"``) sequence-level
    score-function KLs (:func:`..losses.sequence_kl`); with ``kl_estimator="token"`` the
    sequential KL of 000 Sec. 3.3 (Zeng et al. 2024),
    ``sum_t KL(pi_theta(.|[x, y_<t]) || q(.|[x, y_<t]))`` over the full vocabulary on the
    samples, for both ``q = magnet`` and ``q = pi_t`` (a ``"previous"`` snapshot refreshed at
    the start of every iteration), computed in the same teacher-forced pass as the
    log-probs (:meth:`~prefgym.llm.policy.LMPolicy.sequential_kl`). As in 000, no
    importance weights across the optimiser steps (``importance_weighting=False``). On an
    enumerated menu, both KLs are exact and the policy-gradient term is importance
    weighted (``pi_theta / pi_t``, weights ``pi_t``), so every step follows the exact
    objective whose maximiser is ``rules.magnetic_step``; ``kl_estimator="token"`` is
    refused on menus (the menu policy's KL is not the LM's sequential KL).

    ``variant="mpo_rt"`` is MPO-RT (000 App. A.2, Alg. 2): the magnet KL moves into the
    reward, ``R = P(y_1 > y_2) - alpha (log pi_t(y_1) - log magnet(y_1))`` (Alg. 2 line 6),
    and the loss keeps the trust region only (Eq. 9,
    :func:`~prefgym.agents.llm.losses.mpo_rt_loss`); on a menu its exact step is
    ``rules.regularized_step(log pi_t, P, eta_k, alpha, log magnet)`` (000 Thm 3.5).

    Parameters
    ----------
    alpha
        Magnet KL coefficient (000: 0.2-0.3 for LLMs; 0.02 for MPO-RT).
    eta
        MMD step (``1/eta`` weights the trust-region KL).
    refresh_every
        ``T_k``: iterations between magnet refreshes.
    anneal
        ``eta_k = eta (1 - j / T_k)`` with ``j`` the iteration within the current magnet
        period (000 Alg. 1 line 19, ``eta <- 1 - k/T_k``; we read ``k`` as counted from the
        last refresh, since the global reading turns negative after ``T_k``).
    baseline
        ``"loo"`` (leave-one-out over the group), ``"mean"`` (group mean, ``pi_t``-weighted
        on a menu), ``"remax"`` (the greedy response's reward, 000's choice), ``"half"``
        or ``"none"``.
    importance_weighting
        Weight the policy-gradient and sampled KL terms by ``pi_theta / pi_t``; ``None``:
        on for an enumerated menu, off for samples (000).
    opponent
        ``"magnet"`` (000 Alg. 1) or ``"current"`` (000 Eq. 4), see above.
    kl_estimator
        ``"sequence"`` (default) or ``"token"``: the sequential KL of 000 Sec. 3.3 for both
        KL terms, on sampled responses only (see above). Logged as ``kl_magnet`` / ``kl_old``.
    variant
        ``"mpo"`` (000 Alg. 1, default) or ``"mpo_rt"`` (000 Alg. 2, see above; the baseline
        ``"remax"`` is not offered with it).
    """

    name: ClassVar[str] = "mpo"
    alpha: float = 0.2
    eta: float = 1.0
    refresh_every: int = 25
    anneal: bool = True
    baseline: Literal["auto", "loo", "mean", "remax", "half", "none"] = "auto"
    importance_weighting: bool | None = None
    opponent: Literal["magnet", "current"] = "magnet"
    kl_estimator: KLEstimator = "sequence"
    variant: Literal["mpo", "mpo_rt"] = "mpo"

    @property
    def snapshots(self) -> tuple[str, ...]:  # type: ignore[override]
        """``("magnet",)``, plus ``"previous"`` (``pi_t``, for the token KL) with ``kl_estimator="token"``."""
        return ("magnet", "previous") if self.kl_estimator == "token" else ("magnet",)

    def __post_init__(self) -> None:
        _check_kl_estimator(self.kl_estimator)
        if self.opponent not in ("magnet", "current"):
            raise ValueError(f"opponent must be 'magnet' or 'current'; got {self.opponent!r}")
        if int(self.refresh_every) < 1:
            raise ValueError(f"refresh_every must be >= 1; got {self.refresh_every}")
        if self.baseline not in ("auto", "loo", "mean", "remax", "half", "none"):
            raise ValueError(f"unknown baseline {self.baseline!r}")
        if self.variant not in ("mpo", "mpo_rt"):
            raise ValueError(f"variant must be 'mpo' or 'mpo_rt'; got {self.variant!r}")
        if self.variant == "mpo_rt" and self.baseline == "remax":
            raise ValueError("variant='mpo_rt' takes the baselines 'auto', 'loo', 'mean', 'half' or 'none'; "
                             "'remax' would need the greedy response's transformed reward")

    def step_size(self, iteration: int) -> float:
        """``eta_k`` of iteration ``iteration`` (0-based)."""
        if not self.anneal:
            return float(self.eta)
        j = iteration % int(self.refresh_every)
        return float(self.eta) * (1.0 - j / int(self.refresh_every))  # 000 Alg. 1 line 19

    def prepare(self, trainer, batch, iteration):
        magnet = trainer.snapshot("magnet")
        kind = self.baseline if self.baseline != "auto" else ("mean" if batch.exact else "loo")
        if self.opponent == "current" and kind != "remax":
            reward, greedy = batch.win_rate, None  # P(y > pi_t): 000 Eq. (4), the tabular MPO
        else:
            opp = magnet if self.opponent == "magnet" else trainer.lm
            reward, greedy = trainer.source.win_rates_against(
                batch, opp, seed=trainer.iteration_seed(iteration, "opponent"), greedy=kind == "remax")
        rt = self.variant == "mpo_rt"
        if self.kl_estimator == "sequence" or rt:  # the sequence-level magnet KL, RT's reward, exact steps
            batch.extra["magnet_logp"] = trainer.source.logp(batch, requires_grad=False, policy=magnet)
        batch.extra["preference"] = reward
        if rt:  # 000 Alg. 2 line 6: the magnet KL moves into the reward
            reward = mpo_rt_reward(reward, batch.old_logp, batch.extra["magnet_logp"], self.alpha)
        if kind == "remax":
            b = greedy[:, None].expand_as(reward)
        elif kind == "loo":
            if batch.exact:
                raise ValueError("the leave-one-out baseline needs samples; use baseline='mean' on a menu")
            k = reward.shape[-1]
            if k < 2:
                raise ValueError("the leave-one-out baseline needs num_samples >= 2")
            b = (reward.sum(-1, keepdim=True) - reward) / (k - 1)
        elif kind == "mean":
            w = batch.weights if batch.exact else torch.full_like(reward, 1.0 / reward.shape[-1])
            b = (w * reward).sum(-1, keepdim=True).expand_as(reward)
        elif kind == "half":
            b = torch.full_like(reward, 0.5)
        else:
            b = torch.zeros_like(reward)
        batch.extra["reward"] = reward
        batch.extra["baseline"] = b.detach()
        batch.extra["advantage"] = (reward - b).detach()  # 000 Alg. 1 line 7 (gamma = 1, sequence level)
        batch.extra["eta_k"] = self.step_size(iteration)
        if self.kl_estimator == "token":  # refused on a menu, so no exact step needs magnet_logp
            targets: dict[str, Any] = {}
            if self.alpha != 0.0 and not rt:
                targets["magnet"] = magnet
            if 0 < batch.extra["eta_k"] < math.inf:
                trainer.refresh_snapshot("previous")  # pi_t = pi_{theta^k}, the trust region's centre
                targets["old"] = trainer.snapshot("previous")
            _request_sequential_kl(trainer, batch, targets, self.name)

    def exact_step(self, batch):
        eta_k = batch.extra["eta_k"]
        if eta_k <= 0:
            return None
        magnet = batch.extra["magnet_logp"]
        if self.variant == "mpo_rt":  # 000 Thm 3.5: the KL-regularised MD step
            return regularized_step(batch.old_logp, batch.extra["preference"], eta_k, self.alpha, magnet)
        # 000 Eq. (4), MPO's spec step: (log pi_k + eta alpha log magnet + eta R) / (1 + eta alpha)
        inputs = FixedInputs(batch.old_logp, eta_k, {"current": batch.extra["reward"]}, magnet=magnet)
        return SPECS["mpo"].step(inputs, SimpleNamespace(alpha=self.alpha))

    def loss(self, trainer, batch, logp, iteration):
        eta_k = batch.extra["eta_k"]
        iw = batch.exact if self.importance_weighting is None else bool(self.importance_weighting)
        old = batch.old_logp.to(logp.device)
        adv = batch.extra["advantage"].to(logp.device)
        sample = old if iw else None
        if self.kl_estimator == "sequence" or self.variant == "mpo_rt":
            magnet = batch.extra["magnet_logp"].to(logp.device)
        if self.variant == "mpo_rt":
            out = self._rt_loss(trainer, batch, logp, old, magnet, sample, eta_k)
        elif batch.exact:
            kl_m = _expand(exact_kl_rows(logp, magnet), logp)
            kl_o = _expand(exact_kl_rows(logp, old), logp) if eta_k > 0 else None
            out = mpo_loss(logp, adv, alpha=self.alpha, eta=eta_k if eta_k > 0 else math.inf,
                           kl_magnet=kl_m, kl_old=kl_o, sample_logp=sample, weights=batch.weights)
        elif self.kl_estimator == "token":
            kls = _sequential_kls(trainer, batch, logp)  # 000 Sec. 3.3: sequential KL, both terms
            out = mpo_loss(logp, adv, alpha=self.alpha, eta=eta_k if eta_k > 0 else math.inf,
                           kl_magnet=kls.get("magnet"), kl_old=kls.get("old"), sample_logp=sample)
        else:
            out = mpo_loss(logp, adv, alpha=self.alpha, eta=eta_k if eta_k > 0 else math.inf,
                           magnet_logp=magnet, old_logp=old, sample_logp=sample)
        out.metrics["reward"] = batch.extra["reward"].mean()
        out.metrics["eta_k"] = torch.tensor(eta_k)
        return out

    def _rt_loss(self, trainer, batch, logp, old, magnet, sample, eta_k) -> LossOutput:
        """MPO-RT's loss (000 Eq. 9): the policy gradient on the transformed reward plus the trust region."""
        kl_o = None
        if eta_k > 0 and batch.exact:
            kl_o = _expand(exact_kl_rows(logp, old), logp)
        elif eta_k > 0 and self.kl_estimator == "token":
            kl_o = _sequential_kls(trainer, batch, logp).get("old")
        return mpo_rt_loss(logp, batch.extra["preference"].to(logp.device), ref_logp=magnet, old_logp=old,
                           alpha=self.alpha, eta=eta_k if eta_k > 0 else math.inf,
                           baseline=batch.extra["baseline"].to(logp.device), sample_logp=sample, kl_old=kl_o,
                           weights=batch.weights if batch.exact else None)

    def end_iteration(self, trainer, iteration):
        if magnet_refresh_due(iteration, self.refresh_every):  # 000 Alg. 1 line 16
            trainer.refresh_snapshot("magnet")


# ------------------------------------------------------------------ pairwise losses
@dataclass
class SPOAlgorithm(SelfPlayAlgorithm):
    """Self-play SPO (003): the pairwise loss ``L_pref^{alpha, mu}`` on all pairs of the group.

    Every ordered pair ``(y_i, y_j)`` of a state is a comparison; its label is the
    judge's probability (``labels="soft"``: the pair enters as winner with weight
    ``P(y_i > y_j)`` and as loser with ``1 - P``) or one Bernoulli draw
    (``labels="bernoulli"``). Pairs drawn from ``pi_t`` (or weighted ``pi_t(i) pi_t(j)`` on a
    menu) have a symmetric full-support sampling weight, so under a Bradley-Terry judge
    the data are BT-consistent and Theorems 1-2 of 003 give the fixed point
    ``Softmax(r / alpha)``. ``beta > 0`` adds the global ``beta KL(pi_theta || pi_ref)``
    (003 Eq. 6; exact on a menu; on samples the sequence-level score-function estimator,
    or with ``kl_estimator="token"`` 003 App. D's token-wise estimator
    ``sum_tau KL(pi_theta(.|x, y_<tau) || pi_ref(.|x, y_<tau))`` over the full vocabulary,
    computed in the same teacher-forced pass as the log-probs and logged as
    ``kl_reference_token``; refused on menus, whose KL is exact or sequence-level).

    ``loss_form`` picks the preference part: ``"pairwise"`` (003 Eqs. 9-12, above),
    ``"best_of_n"`` (003 Eq. 14: the group's best response against all ``K``, softmax with
    temperature ``1/alpha``) or ``"ranked"`` (003 Eq. 15, Plackett-Luce: every prefix of the
    group's ranking). The best response and the ranking are the group's order by win rate
    against ``pi_t`` (``batch.win_rate``: exact on a menu, the average over the other
    samples otherwise; ties keep the lower index first). These labels are deterministic
    given the group, not Plackett-Luce draws, so Theorem 1's fixed point is stated for
    ``"pairwise"`` only.

    Parameters
    ----------
    alpha
        Softness (``> 0`` for ``"best_of_n"`` and ``"ranked"``).
    gamma
        Exponent of the stop-gradient pair weight ``mu = (pi_w + pi_l)^gamma`` (003 Eq. 11).
    beta
        Global KL coefficient (0: Theorem 1's setting).
    labels
        ``"soft"`` or ``"bernoulli"``.
    kl_estimator
        ``"sequence"`` (default) or ``"token"`` (003 App. D), for ``beta > 0`` on samples.
    loss_form
        ``"pairwise"`` (default), ``"best_of_n"`` or ``"ranked"`` (see above); ``labels``
        applies to ``"pairwise"`` only.
    """

    name: ClassVar[str] = "spo"
    alpha: float = 1.0
    gamma: float = 0.0
    beta: float = 0.0
    labels: Literal["soft", "bernoulli"] = "soft"
    kl_estimator: KLEstimator = "sequence"
    loss_form: Literal["pairwise", "best_of_n", "ranked"] = "pairwise"

    def __post_init__(self) -> None:
        _check_kl_estimator(self.kl_estimator)
        if self.labels not in ("soft", "bernoulli"):
            raise ValueError(f"labels must be 'soft' or 'bernoulli'; got {self.labels!r}")
        if self.loss_form not in ("pairwise", "best_of_n", "ranked"):
            raise ValueError(f"loss_form must be 'pairwise', 'best_of_n' or 'ranked'; got {self.loss_form!r}")
        if self.loss_form != "pairwise" and not self.alpha > 0:
            raise ValueError(f"loss_form={self.loss_form!r} needs alpha > 0 (003 Eqs. 14-15); "
                             f"got alpha={self.alpha}")

    def needs_reference(self) -> bool:
        return self.beta > 0

    def prepare(self, trainer, batch, iteration):
        if self.beta > 0 and self.kl_estimator == "token":
            _request_sequential_kl(trainer, batch, {"reference": trainer.lm.reference_model}, self.name)
        if self.loss_form != "pairwise":  # best first; a stable sort keeps the lower index first on ties
            batch.extra["ranking"] = torch.sort(batch.win_rate, dim=-1, descending=True, stable=True).indices
            return
        W = batch.win_matrix
        if self.labels == "bernoulli":
            gen = torch.Generator().manual_seed(trainer.iteration_seed(iteration, "labels"))
            upper = torch.triu(torch.ones(W.shape[-2:], dtype=W.dtype), diagonal=1)
            won = (torch.rand(W.shape, generator=gen, dtype=W.dtype) < W).to(W.dtype) * upper  # i < j
            W = won + (upper - won).transpose(-1, -2)  # the label of (j, i) is 1 - that of (i, j)
        K = W.shape[-1]
        off = ~torch.eye(K, dtype=torch.bool)
        pair_w = W * off  # the pair (i wins, j loses) with the label probability; i == j excluded
        if batch.exact:
            # s(i, j) = pi_t(i) pi_t(j): the exact expectation over self-play pairs
            pair_w = pair_w * batch.weights[:, :, None] * batch.weights[:, None, :]
        batch.extra["pair_weights"] = pair_w.detach()

    def _preference_loss(self, batch, logp) -> LossOutput:
        if self.loss_form == "best_of_n":  # 003 Eq. (14)
            return spo_best_of_n_loss(logp, batch.extra["ranking"][:, 0].to(logp.device), alpha=self.alpha,
                                      gamma=self.gamma)
        if self.loss_form == "ranked":  # 003 Eq. (15)
            return spo_ranked_loss(logp, batch.extra["ranking"].to(logp.device), alpha=self.alpha,
                                   gamma=self.gamma)
        K = logp.shape[-1]
        i, j = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
        w = batch.extra["pair_weights"].to(logp.device)
        # 003 Eq. (9) / (11) on every ordered pair (i wins, j loses)
        return spo_loss(logp[:, i], logp[:, j], alpha=self.alpha, gamma=self.gamma, weights=w)

    def loss(self, trainer, batch, logp, iteration):
        out = self._preference_loss(batch, logp)
        if self.beta > 0:
            ref = batch.ref_logp.to(logp.device)
            metric = "kl_reference"
            if batch.exact:
                kl = exact_kl_rows(logp, ref).mean()
            elif self.kl_estimator == "token":
                kl = _sequential_kls(trainer, batch, logp)["reference"].mean()  # 003 App. D, token-wise
                metric = "kl_reference_token"  # the trainer's row keeps kl_reference for KL(pi_t || ref)
            else:
                kl = sequence_kl(logp, ref).mean()  # 003 App. D on pi_theta's own samples
            out = LossOutput(out.loss + self.beta * kl, {**out.metrics, metric: kl.detach()})
        return out


@dataclass
class _BestWorst(SelfPlayAlgorithm):
    """Best vs worst of each group by (estimated) win rate against ``pi_t`` (001 App. B.3)."""

    beta: float = 0.1
    reference: Literal["previous", "initial"] = "previous"

    def __post_init__(self) -> None:
        if self.reference not in ("previous", "initial"):
            raise ValueError(f"reference must be 'previous' or 'initial'; got {self.reference!r}")

    def needs_reference(self) -> bool:
        return self.reference == "initial"

    def prepare(self, trainer, batch, iteration):
        g = batch.win_rate
        best, worst = g.argmax(dim=-1), g.argmin(dim=-1)  # ties go to the lowest index
        rows = torch.arange(g.shape[0])
        valid = (g[rows, best] > g[rows, worst]).to(g.dtype)  # a tied group carries no signal: skipped
        ref = batch.old_logp if self.reference == "previous" else batch.ref_logp
        batch.extra.update(best=best, worst=worst, pair_valid=valid,
                           ref_chosen=ref[rows, best], ref_rejected=ref[rows, worst])

    def scored_responses(self, batch):
        """The chosen and rejected response of each untied group: the only ones the loss reads.

        When every group is tied the loss is ``0 * logp.sum()``; the first group's pair is
        still scored so that the step keeps a graph (its gradients are zero either way).
        """
        e = batch.extra
        valid = e["pair_valid"] > 0
        if not bool(valid.any()):
            valid = torch.zeros_like(valid)
            valid[0] = True
        mask = torch.zeros(batch.shape, dtype=torch.bool, device=valid.device)
        rows = torch.arange(mask.shape[0], device=valid.device)
        mask[rows, e["best"].to(valid.device)] = valid
        mask[rows, e["worst"].to(valid.device)] |= valid
        return mask

    def _pair(self, batch, logp):
        rows = torch.arange(logp.shape[0])
        e = batch.extra
        return (logp[rows, e["best"]], logp[rows, e["worst"]], e["ref_chosen"].to(logp.device),
                e["ref_rejected"].to(logp.device), e["pair_valid"].to(logp.device))

    def _masked(self, fn, batch, logp) -> LossOutput:
        cw, cl, rw, rl, valid = self._pair(batch, logp)
        if valid.sum() == 0:  # every group tied: a zero loss that keeps the graph
            return LossOutput(0.0 * logp.sum(), {"pairs": valid.sum()})
        out = fn(cw, cl, rw, rl, beta=self.beta, weights=valid)
        out.metrics["pairs"] = valid.sum()
        return out


@dataclass
class DPOAlgorithm(_BestWorst):
    """Iterative DPO on best-vs-worst pairs (001 App. B.3, the baseline of 001 and 002).

    Per state, the best and worst responses by win rate (average over the other samples,
    or exact ``P(y > pi_t)`` on a menu) form the pair; the DPO loss is taken against the
    reference ``"previous"`` (``pi_t``, the start of the iteration: online / iterative
    DPO that refreshes its reference every round) or ``"initial"`` (the policy's
    reference model).

    Parameters
    ----------
    beta
        DPO's KL coefficient.
    reference
        ``"previous"`` or ``"initial"``.
    """

    name: ClassVar[str] = "dpo"

    def loss(self, trainer, batch, logp, iteration):
        return self._masked(dpo_loss, batch, logp)


@dataclass
class IPOAlgorithm(_BestWorst):
    """Iterative IPO (Azar et al. 2023, Eq. 17) on the best-vs-worst pairs of :class:`DPOAlgorithm`.

    ``beta`` is IPO's ``tau``; the target log-ratio margin is ``1 / (2 tau)``.
    """

    name: ClassVar[str] = "ipo"

    def loss(self, trainer, batch, logp, iteration):
        return self._masked(ipo_loss, batch, logp)


@dataclass
class SLiCHFAlgorithm(_BestWorst):
    """SLiC-HF (Zhao et al. 2023; 003 App. E.2) on the best-vs-worst pairs of :class:`DPOAlgorithm`.

    The rank-calibration hinge ``max(0, delta - log pi(y_w) + log pi(y_l))``
    (:func:`~prefgym.agents.llm.losses.slic_hf_loss`); no reference log-probs enter it, so
    ``beta`` and ``reference`` are unused. ``lam > 0`` adds the likelihood regulariser
    ``-lam E_{y ~ pi_ref}[log pi_theta(y)]``: exact on an enumerated menu (weights
    ``pi_ref`` over the menu) and, on samples of ``pi_t``, the self-normalised importance
    estimate with weights ``pi_ref(y_k) / pi_t(y_k)`` over the group (Zhao et al. use
    pre-generated reference samples instead).

    Parameters
    ----------
    delta
        Hinge margin.
    lam
        Weight of the reference-likelihood regulariser (needs a reference model).
    """

    name: ClassVar[str] = "slic_hf"
    delta: float = 1.0
    lam: float = 0.0

    def needs_reference(self) -> bool:
        return self.lam > 0 or super().needs_reference()

    def scored_responses(self, batch):
        """The pairs only while ``lam == 0``; the regulariser reads every response of the group."""
        return None if self.lam > 0 else super().scored_responses(batch)

    def loss(self, trainer, batch, logp, iteration):
        chosen, rejected, _, _, valid = self._pair(batch, logp)
        reg = None
        if self.lam > 0:
            ref = batch.ref_logp.to(logp.device)
            log_w = ref if batch.exact else ref - batch.old_logp.to(logp.device)
            reg = (torch.softmax(log_w, dim=-1) * logp).sum(-1)  # E_{y ~ pi_ref} log pi_theta(y), per state
        if valid.sum() == 0:  # every group tied: no hinge term
            loss = 0.0 * logp.sum() if reg is None else -self.lam * reg.mean()
            return LossOutput(loss, {"pairs": valid.sum()})
        out = slic_hf_loss(chosen, rejected, delta=self.delta, reg_logp=reg, lam=self.lam, weights=valid)
        out.metrics["pairs"] = valid.sum()
        return out


# ------------------------------------------------------------------ AIHF (demonstrations + preferences)
def _subset(n: int, k: int | None, seed: int) -> list[int]:
    """``range(n)`` (``k`` is ``None`` or ``>= n``), or ``k`` of its items without replacement, sorted."""
    if k is None or int(k) >= n:
        return list(range(n))
    gen = torch.Generator().manual_seed(int(seed))
    return sorted(torch.randperm(n, generator=gen)[: int(k)].tolist())


@dataclass
class AIHFAlgorithm(_BestWorst):
    """AIHF's policy-only variants (004 Sec. 3.3) on the self-play loop: AIHF-DPO and Self-Play AIHF.

    Each iteration combines two data sets (004 Eqs. 10-11, each term a mean over its own batch):

    * demonstrations ``(s^E, a^E)``, given at construction (``demos_per_iteration`` of
      them per iteration, or all), scored by teacher forcing under the LM (the raw
      sequence log-likelihood, also for a :class:`~prefgym.agents.llm.menu.MenuPolicy`);
    * preference pairs ``(tau_j > tau_i)``: by default the best vs worst of the group of
      ``K`` responses of ``pi_t`` by the judge's win rates, exactly as
      :class:`DPOAlgorithm` (tied groups skipped); or a fixed data set ``preferences`` of
      ``(prompt, chosen, rejected)`` texts (``pairs_per_iteration`` per iteration, or all);
      ``preferences=[]`` drops the preference term.

    ``variant="dpo"`` is AIHF-DPO (004 Eq. 10, :func:`~.losses.aihf_dpo_loss`):
    ``-w_1 E_D[log pi(a^E|s^E)] - E_P[log sigma(beta (r_j - r_i))]``, i.e. DPO plus
    ``w_1`` x SFT; ``w_1 = 0`` is iterative DPO. ``variant="self_play"`` is Self-Play
    AIHF (004 Eq. 11, :func:`~.losses.self_play_aihf_loss`): the demonstration term
    becomes SPIN's, with the demonstration as chosen and a response ``a~ ~ pi_t(.|s^E)``
    (drawn once per demonstration at the start of the iteration from the *current*
    policy, 004 Sec. 2.5 (d)) as rejected.

    The DPO reward ``r = log pi/pi^0`` uses ``pi^0 = pi_t`` (``reference="previous"``, the
    model at the start of the iteration, as SPIN resets it every round; 004 does not say)
    or the policy's reference model (``reference="initial"``). Without demonstrations,
    ``variant="dpo"`` is :class:`DPOAlgorithm`.

    Parameters
    ----------
    beta
        DPO / SPIN temperature.
    reference
        ``"previous"`` or ``"initial"`` (``pi^0``).
    demonstrations
        ``(prompt, response)`` pairs; the response is tokenised without special tokens
        and, with ``append_eos``, ends with EOS (the demonstrator chose to stop).
    w1
        Demonstration weight (004 Table 6: 1e-2, 1e-3, 1e-4; headline 1e-4 for Eq. 10;
        not reported for Eq. 11).
    variant
        ``"dpo"`` (Eq. 10) or ``"self_play"`` (Eq. 11).
    preferences
        ``None`` (judge pairs from the group) or ``(prompt, chosen, rejected)`` triples.
    demos_per_iteration, pairs_per_iteration
        Demonstrations / data-set pairs drawn per iteration (``None``: all).
    append_eos
        Append EOS to demonstrations and data-set responses.
    """

    name: ClassVar[str] = "aihf_dpo"
    demonstrations: Sequence[tuple[str, str]] = ()
    w1: float = 1e-4
    variant: Literal["dpo", "self_play"] = "dpo"
    preferences: Sequence[tuple[str, str, str]] | None = None
    demos_per_iteration: int | None = None
    pairs_per_iteration: int | None = None
    append_eos: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in ("dpo", "self_play"):
            raise ValueError(f"variant must be 'dpo' or 'self_play'; got {self.variant!r}")
        demos = [tuple(d) for d in self.demonstrations]
        if any(len(d) != 2 or not all(isinstance(x, str) for x in d) for d in demos):
            raise ValueError("demonstrations must be (prompt, response) pairs of strings")
        self.demonstrations = demos
        if self.variant == "self_play" and not demos:
            raise ValueError("variant='self_play' needs demonstrations (004 Eq. 11's first term)")
        if self.preferences is not None:
            prefs = [tuple(p) for p in self.preferences]
            if any(len(p) != 3 or not all(isinstance(x, str) for x in p) for p in prefs):
                raise ValueError("preferences must be (prompt, chosen, rejected) triples of strings")
            self.preferences = prefs
        for k in ("demos_per_iteration", "pairs_per_iteration"):
            v = getattr(self, k)
            if v is not None and int(v) < 1:
                raise ValueError(f"{k} must be >= 1 or None; got {v}")

    def _encode(self, trainer, texts: list[str]) -> list[Tensor]:
        lm = trainer.lm
        eos = list(lm.eos_token_ids[:1]) if (self.append_eos and lm.eos_token_ids) else []
        enc = lm.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [torch.tensor(list(e) + eos, dtype=torch.long) for e in enc]

    def _policy_samples(self, trainer, prompts: list[str], seed: int) -> list[Tensor]:
        """One response of the current policy ``pi_t`` per prompt (the ``a~`` of 004 Eq. 11)."""
        if trainer.is_menu:
            idx = trainer.policy.sample(prompts, 1, generator=torch.Generator().manual_seed(int(seed)))[:, 0]
            return [trainer.policy.response_ids[i] for i in idx.tolist()]
        return list(trainer.lm.generate(prompts, seed=seed, compute_ref=False).response_ids)

    def _score(self, trainer, prompts, responses, requires_grad: bool, reference: bool = False) -> Tensor:
        lps = trainer.lm.sequence_logprobs(prompts, responses, requires_grad=requires_grad,
                                           reference=reference, batch_size=trainer.logp_batch_size)
        return torch.stack([lp.sum() for lp in lps])

    def prepare(self, trainer, batch, iteration):
        e = batch.extra
        if self.preferences is None:
            super().prepare(trainer, batch, iteration)  # best vs worst of the group (DPOAlgorithm)
        prompts: list[str] = []
        responses: list[Tensor] = []
        sizes: dict[str, int] = {}
        if self.demonstrations:
            seed = trainer.iteration_seed(iteration, "demos")
            chosen = [self.demonstrations[i]
                      for i in _subset(len(self.demonstrations), self.demos_per_iteration, seed)]
            d_prompts = [p for p, _ in chosen]
            prompts += d_prompts
            responses += self._encode(trainer, [a for _, a in chosen])
            sizes["demo"] = len(chosen)
            if self.variant == "self_play":
                prompts += d_prompts
                responses += self._policy_samples(trainer, d_prompts,
                                                  trainer.iteration_seed(iteration, "demo_samples"))
                sizes["sample"] = len(chosen)
        if self.preferences:
            pairs = [self.preferences[i] for i in _subset(
                len(self.preferences), self.pairs_per_iteration, trainer.iteration_seed(iteration, "pairs"))]
            prompts += [p for p, _, _ in pairs] * 2
            responses += self._encode(trainer, [c for _, c, _ in pairs] + [r for _, _, r in pairs])
            sizes["chosen"] = sizes["rejected"] = len(pairs)
        e["aihf_prompts"], e["aihf_responses"], e["aihf_sizes"] = prompts, responses, sizes
        if prompts:
            # pi^0 of the extra rows: pi_t now (before the optimiser steps) or the reference model
            e["aihf_ref_logp"] = self._score(trainer, prompts, responses, requires_grad=False,
                                             reference=self.reference == "initial")
            e["aihf_old_logp"] = (e["aihf_ref_logp"] if self.reference == "previous"
                                  else self._score(trainer, prompts, responses, requires_grad=False))

    def scored_responses(self, batch):
        return None  # scores every response (its losses keep the whole group in the graph)

    def _split(self, batch, x: Tensor) -> dict[str, Tensor]:
        out, start = {}, 0
        for k, n in batch.extra["aihf_sizes"].items():
            out[k] = x[start:start + n]
            start += n
        return out

    def loss(self, trainer, batch, logp, iteration):
        e = batch.extra
        cur: dict[str, Tensor] = {}
        ref: dict[str, Tensor] = {}
        if e["aihf_prompts"]:
            cur = self._split(batch, self._score(trainer, e["aihf_prompts"], e["aihf_responses"],
                                                 requires_grad=True))
            ref = self._split(batch, e["aihf_ref_logp"].to(logp.device))
        # the preference pairs (tau_j > tau_i): from the judged group, or the data set
        pref: tuple[Tensor, ...] | None = None
        pref_w = None
        if self.preferences is None:
            cw, cl, rw, rl, valid = self._pair(batch, logp)
            if valid.sum() > 0:
                pref, pref_w = (cw, cl, rw, rl), valid
        elif "chosen" in cur:
            pref = (cur["chosen"], cur["rejected"], ref["chosen"], ref["rejected"])
        if "demo" not in cur:  # no demonstrations: plain (iterative) DPO
            if pref is None:
                return LossOutput(0.0 * logp.sum(), {"pairs": torch.zeros(())})
            out = dpo_loss(*pref, beta=self.beta, weights=pref_w)
        else:
            kw = dict(beta=self.beta, w1=self.w1, pref_weights=pref_w)
            pref_args = pref if pref is not None else (None, None, None, None)
            if self.variant == "self_play":  # 004 Eq. (11)
                out = self_play_aihf_loss(cur["demo"], cur["sample"], ref["demo"], ref["sample"], *pref_args,
                                          **kw)
            else:  # 004 Eq. (10)
                out = aihf_dpo_loss(cur["demo"], *pref_args, **kw)
            if pref is None:  # keep the group in the graph (a zero contribution)
                out = LossOutput(out.loss + 0.0 * logp.sum(), out.metrics)
            old = self._split(batch, e["aihf_old_logp"].to(logp.device))["demo"]
            out.metrics["demo_logp"] = cur["demo"].detach().mean()
            out.metrics["demo_logp_gain"] = (cur["demo"].detach() - old).mean()  # vs pi_t
        n_pairs = (pref_w.sum() if pref_w is not None else torch.tensor(float(len(pref[0])))) \
            if pref is not None else torch.zeros(())
        out.metrics["pairs"] = n_pairs
        return out


def __getattr__(name: str):
    """``ALGORITHMS`` and the generated algorithms (``OMWUAlgorithm``, ``NashMDAlgorithm``, ...) live in
    :mod:`prefgym.agents.llm.registry`, built from the specs."""
    if name == "ALGORITHMS" or (name.endswith("Algorithm") and not name.startswith("_")):
        from prefgym.agents.llm import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
