"""004's reward estimator (Eq. 19 with Eq. 34's weights), shared by the SAC agent and the exact solvers.

004 fits one reward to both data sources by maximising (A.3.2, Eq. 34)

    |D| L_1(R) + |P| L_2(R),    L_1 = E_D[ sum_t gamma^t log pi_R(a_t|s_t) ],
                                L_2 = E_P[ log sig((R(tau_w) - R(tau_l)) / beta) ],

with ``pi_R`` the KL-regularised optimal policy at temperature ``beta``
(``pi ~ pi^0 exp(Q / beta)``, Eq. 40) and ``R(tau) = sum_t gamma^t r(s_t, a_t)``.
We divide by ``|D| + |P|`` (a mean over all feedback items, so learning rates do
not depend on the data sizes): the default weights are

    w_demo = |D| / (|D| + |P|),   w_pref = |P| / (|D| + |P|)       (:func:`paper_weights`)

**One temperature.** The preference model is the trajectory-level softmax
``mu ~ mu^0 exp(R / beta)`` (004 Sec. 3.2 before it drops ``beta``), so its logit is
``(R_w - R_l) / beta``; Lemma 4.1's proof carries the same ``1 / beta`` on the
demonstration gradient (Eqs. 45-47). Both terms therefore use one ``temperature``
``beta``, the one of the lower-level policy: for SAC, whose soft-optimal policy is
``pi ~ exp(Q / alpha)``, ``beta`` is SAC's entropy coefficient ``alpha``. (004 writes
Eq. 8 with ``beta = 1``; that is the special case ``alpha = 1``.)

**One footing.** Both terms are sums over a trajectory segment: a preference item is
a pair of segments of ``horizon`` (discounted) steps, and a demonstration item is an
equally long segment of ``D^E``; with per-step samples the demonstration term is
``horizon`` times the per-step mean (``horizon = sum_{t < L} gamma^t``). For a static
(bandit) problem ``horizon = 1``.
"""

from __future__ import annotations

import torch
from torch import nn

from prefgym.agents.bradley_terry import bradley_terry_nll
from prefgym.errors import InvalidArgumentError

__all__ = ["TabularReward", "aihf_loss", "make_reward_optimizer", "paper_weights"]


def paper_weights(n_demo: float, n_pref: float) -> tuple[float, float]:
    """004 Eq. 34's weights ``|D|`` and ``|P|``, normalised to sum to one.

    Parameters
    ----------
    n_demo, n_pref
        The numbers of demonstration items ``|D|`` and preference pairs ``|P|`` (items of the
        same length, see the module docstring); a source that is not used counts 0.
    """
    n_demo, n_pref = float(n_demo), float(n_pref)
    if n_demo < 0 or n_pref < 0 or n_demo + n_pref <= 0:
        raise InvalidArgumentError(
            f"n_demo and n_pref must be >= 0 with a positive sum; got {n_demo}, {n_pref}"
        )
    total = n_demo + n_pref
    return n_demo / total, n_pref / total


def make_reward_optimizer(params, lr: float = 1e-4, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The reward optimiser of Alg. 1's reward-alignment step: Adam (004 A.2.1: lr 1e-4)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


class TabularReward(nn.Module):
    """``r(s, a; theta) = theta[s, a]`` on one-hot states and one-hot (or mixed) actions.

    ``forward(obs (..., S), act (..., A))`` returns ``sum_{s, a} obs_s act_a theta[s, a]``;
    it is linear in ``act``, so a row of action *probabilities* gives the expected reward
    ``E_{a ~ pi}[r(s, a)]`` exactly (the agent side of Eq. 18 without sampling).
    """

    def __init__(self, n_states: int, n_actions: int):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(int(n_states), int(n_actions), dtype=torch.float64))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.einsum(
            "...s,sa,...a->...", obs.to(self.theta.dtype), self.theta, act.to(self.theta.dtype)
        )


def aihf_loss(
    net: nn.Module,
    demo: tuple[torch.Tensor, torch.Tensor] | None = None,
    agent: tuple[torch.Tensor, torch.Tensor] | None = None,
    prefs: dict[str, torch.Tensor] | None = None,
    w_demo: float | None = None,
    w_pref: float | None = None,
    *,
    n_demo: float | None = None,
    n_pref: float | None = None,
    temperature: float = 1.0,
    horizon: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The reward loss whose negative gradient is 004's estimator ``g = w_1 g_1 + g_2`` (Eq. 19).

    ``loss = w_demo * horizon / beta * (mean r(agent) - mean r(demo))          (Eq. 18 / Lemma 4.1)
           - w_pref * mean[y log sig(dR / beta) + (1 - y) log sig(-dR / beta)]  (Eq. 8 with beta)``

    with ``dR = R_a - R_b``; at ``pi = pi_theta`` its negative gradient is the gradient of
    ``w_demo L_1 + w_pref L_2`` (module docstring).

    Parameters
    ----------
    net
        The reward ``r(s, a; theta)``: ``net(obs (B, .), act (B, .)) -> (B,)``.
    demo, agent
        ``(observations, actions)`` from ``D^E`` and from the current policy (per-step samples).
        None: no demonstration term.
    prefs
        Segment pairs: ``obs_a``, ``act_a`` ``(B, L, .)``, step weights ``w_a`` ``(B, L)``
        (mask times ``gamma^t``), the same for ``b``, and labels ``y = P(a > b)``
        (soft labels allowed). None: no preference term.
    w_demo, w_pref
        Term weights. None (default): 004's Eq. 34 weights from ``n_demo`` and ``n_pref``
        (:func:`paper_weights`); a term used alone gets weight 1.
    n_demo, n_pref
        Data sizes ``|D|`` (demonstration segments) and ``|P|`` (pairs) for the default weights.
    temperature
        ``beta``, shared by the preference model and the policy (SAC: its ``ent_coef``).
    horizon
        Discounted length of one item, ``sum_{t < L} gamma^t`` (1 for a static problem).

    Returns
    -------
    The loss and a dict of its terms (``demo_loss``, ``reward_expert``, ``reward_agent``,
    ``pref_loss``, ``pref_accuracy``, ``loss``, ``w_demo``, ``w_pref``).
    """
    if not temperature > 0:
        raise InvalidArgumentError(f"temperature must be > 0; got {temperature}")
    if not horizon > 0:
        raise InvalidArgumentError(f"horizon must be > 0; got {horizon}")
    use_demo, use_pref = demo is not None, prefs is not None
    if w_demo is None or w_pref is None:
        if use_demo and use_pref:
            if n_demo is None or n_pref is None:
                raise InvalidArgumentError(
                    "aihf_loss needs w_demo and w_pref, or the data sizes n_demo and "
                    "n_pref for 004's default weights |D| and |P|"
                )
            wd, wp = paper_weights(n_demo, n_pref)
        else:
            wd, wp = float(use_demo), float(use_pref)
        w_demo = wd if w_demo is None else w_demo
        w_pref = wp if w_pref is None else w_pref
    if w_demo < 0 or w_pref < 0:
        raise InvalidArgumentError(f"w_demo and w_pref must be >= 0; got {w_demo}, {w_pref}")
    param = next(net.parameters())
    loss = torch.zeros((), device=param.device, dtype=param.dtype)
    stats: dict[str, float] = {"w_demo": float(w_demo), "w_pref": float(w_pref)}
    if use_demo and w_demo > 0:
        if agent is None:
            raise InvalidArgumentError("the demonstration term needs agent samples (agent=None)")
        r_e = net(*demo).mean()
        r_a = net(*agent).mean()
        demo_loss = (r_a - r_e) * (horizon / temperature)  # -(E_D[R] - E_pi[R]) / beta: Eq. (18)
        loss = loss + w_demo * demo_loss
        stats.update(demo_loss=demo_loss.item(), reward_expert=r_e.item(), reward_agent=r_a.item())
    if use_pref and w_pref > 0:
        ret_a = (net(prefs["obs_a"], prefs["act_a"]) * prefs["w_a"]).sum(-1)
        ret_b = (net(prefs["obs_b"], prefs["act_b"]) * prefs["w_b"]).sum(-1)
        y = prefs["y"].to(ret_a.dtype)
        # -log BTL likelihood of mu ~ exp(R / beta), Eq. (8) with the temperature kept
        pref_loss = bradley_terry_nll((ret_a - ret_b) / temperature, y, reduction="mean")
        loss = loss + w_pref * pref_loss
        decided = y != 0.5
        agree = ((ret_a > ret_b) == (y > 0.5))[decided].float()
        stats.update(
            pref_loss=pref_loss.item(), pref_accuracy=agree.mean().item() if decided.any() else float("nan")
        )
    stats["loss"] = loss.item()
    return loss, stats
