"""Exact AIHF (004): the static estimators of Sec. 3.4 / A.3 and tabular Algorithm 1 (Thm 4.1).

Static setting (004 A.3, ``beta`` = temperature, softmax choice model Eq. 21):

- :func:`sft_policy`: ``pi_SFT(i) = #{i in D} / |D|`` (Eq. 12 / 27);
- :func:`preference_policy`: ``pi*(R_P)``, the BTL maximum-likelihood reward's policy, from
  the fixed point Eq. (32);
- :func:`rlhf_policy`: ``pi_RLHF ~ pi_SFT exp(R_P / beta)`` (Eq. 33);
- :func:`aihf_static_policy`: the maximiser of ``|D| L_1 + |P| L_2`` (Eq. 34), the fixed
  point Eq. (36).

The fixed points are computed by the minorise-maximise iteration whose update *is*
Eqs. (32) / (36) with ``rho_{-(i,j)}(pi) = 1 / (pi_i + pi_j)`` (Hunter 2004): it increases
the concave log-likelihood at every step, so it converges to the unique maximiser.
:func:`fit_static_by_optimiser` reaches the same policies with the package's own
estimator (:func:`~prefgym.agents.aihf_estimator.aihf_loss`, the loss the SAC agent uses)
and its Adam reward optimiser, alternating an exact policy-alignment step (Eq. 42).

Tabular KL-regularised MDP (004 Sec. 4, A.4): :class:`KLRegularizedMDP` with exact soft
policy evaluation (Eq. 88), soft policy improvement (Eq. 40), the soft-optimal policy of a
reward (soft value iteration, Eqs. 43-44) and discounted occupancies;
:func:`run_algorithm1` is Algorithm 1 as analysed in Theorem 4.1 (one soft policy-iteration
step per reward step, step size ``alpha_0 / sqrt(K)``), and :func:`lemma41_gradient` is
Lemma 4.1's demonstration gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from prefgym.errors import InvalidArgumentError

__all__ = [
    "AIHFProblem",
    "Algorithm1Result",
    "KLRegularizedMDP",
    "aihf_static_policy",
    "btl_fixed_point",
    "demo_log_likelihood",
    "fit_static_by_optimiser",
    "lemma41_gradient",
    "preference_policy",
    "random_aihf_problem",
    "rlhf_policy",
    "run_algorithm1",
    "sft_policy",
]


# ------------------------------------------------------------------ static (bandit) estimators
def _counts(demo_counts, pref_wins) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(demo_counts, dtype=np.float64)
    w = np.asarray(pref_wins, dtype=np.float64)
    n = d.shape[-1]
    if w.shape[-2:] != (n, n):
        raise InvalidArgumentError(
            f"pref_wins must have shape (..., {n}, {n}) for {n} actions; got {w.shape}"
        )
    if (d < 0).any() or (w < 0).any():
        raise InvalidArgumentError("demo_counts and pref_wins must be non-negative counts")
    return d, w


def sft_policy(demo_counts) -> np.ndarray:
    """``pi_SFT(i) = #{tau_i in D} / |D|`` (004 Eq. 12), batched over leading axes."""
    d = np.asarray(demo_counts, dtype=np.float64)
    total = d.sum(-1, keepdims=True)
    if (total <= 0).any():
        raise InvalidArgumentError("demo_counts must contain at least one demonstration")
    return d / total


def btl_fixed_point(demo_counts, pref_wins, tol: float = 1e-14, max_iter: int = 100_000) -> np.ndarray:
    """The maximiser of ``sum_i d_i log pi_i + sum_{i,j} W_ij log(pi_i / (pi_i + pi_j))`` over the simplex.

    ``pref_wins[..., i, j] = |P_{i > j}|``. Iterates Eq. (36),
    ``pi_i <- (d_i + sum_j W_ij) / (|D| + sum_j N_ij / (pi_i + pi_j))`` with ``N = W + W^T``,
    then normalises (a minorise-maximise step). With ``d = 0`` it is Eq. (32), the BTL MLE.
    Actions that are never demonstrated nor preferred get probability 0.
    """
    d, w = _counts(demo_counts, pref_wins)
    n_pairs = w + np.swapaxes(w, -1, -2)
    num = d + w.sum(-1)
    n_demo = d.sum(-1, keepdims=True)
    pi = np.full(num.shape, 1.0 / num.shape[-1])
    for _ in range(max_iter):
        denom = n_demo + (n_pairs / (pi[..., :, None] + pi[..., None, :])).sum(-1)
        new = num / denom
        new /= new.sum(-1, keepdims=True)
        if np.max(np.abs(new - pi)) < tol:
            return new
        pi = new
    return pi


def preference_policy(pref_wins) -> np.ndarray:
    """``pi*(R_P)``: the softmax policy of the BTL reward estimate (004 Eq. 14 / 32)."""
    w = np.asarray(pref_wins, dtype=np.float64)
    return btl_fixed_point(np.zeros(w.shape[:-1]), w)


def aihf_static_policy(demo_counts, pref_wins) -> np.ndarray:
    """``pi*(R^AIHF)``: the maximiser of ``|D| L_1 + |P| L_2`` (004 Eq. 34, fixed point Eq. 36)."""
    return btl_fixed_point(demo_counts, pref_wins)


def rlhf_policy(demo_counts, pref_wins) -> np.ndarray:
    """``pi_RLHF ~ pi_SFT exp(R_P / beta) = pi_SFT pi*(R_P)`` (004 Eq. 33): zero wherever SFT is zero."""
    q = sft_policy(demo_counts) * preference_policy(pref_wins)
    return q / q.sum(-1, keepdims=True)


def fit_static_by_optimiser(
    demo_counts,
    pref_wins,
    use_demo: bool = True,
    use_pref: bool = True,
    temperature: float = 1.0,
    steps: int = 3000,
    lr: float = 0.05,
    tol: float = 0.0,
) -> tuple[np.ndarray, list[float]]:
    """Alg. 1 on the static problem with the package's estimator and optimiser; returns ``pi_theta``.

    Each iteration: policy alignment is exact (``pi = softmax(R / beta)``, Eq. 42 with a
    uniform ``pi^0``); reward alignment is one Adam step
    (:func:`~prefgym.agents.aihf_estimator.make_reward_optimizer`, no weight decay) on
    :func:`~prefgym.agents.aihf_estimator.aihf_loss` with its default weights ``|D|``,
    ``|P|``. Demonstrations and preference pairs enter as one-hot rows; the agent side of
    Eq. (18) is the policy's probability row, i.e. the exact expectation under ``pi``.
    ``use_demo=False`` fits the preference-only reward (RLHF's reward model),
    ``use_pref=False`` the demonstration-only reward (SFT's implicit reward).

    Returns the policy and the loss trace. Stops early once the policy moves less than
    ``tol`` in one step (``tol=0``: run all ``steps``).
    """
    import torch

    from prefgym.agents.aihf_estimator import TabularReward, aihf_loss, make_reward_optimizer

    d, w = _counts(demo_counts, pref_wins)
    if d.ndim != 1:
        raise InvalidArgumentError("fit_static_by_optimiser takes one problem (1-d demo_counts)")
    n = d.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    net = TabularReward(1, n)
    opt = make_reward_optimizer(net.parameters(), lr=lr, weight_decay=0.0)
    demo = None
    if use_demo:
        idx = torch.as_tensor(np.repeat(np.arange(n), d.astype(int)))
        demo = (one.expand(len(idx), 1), eye[idx])
    prefs = None
    if use_pref:
        win, lose = np.nonzero(w)
        reps = w[win, lose].astype(int)
        a, b = torch.as_tensor(np.repeat(win, reps)), torch.as_tensor(np.repeat(lose, reps))
        m = len(a)
        prefs = {
            "obs_a": one.expand(m, 1, 1),
            "act_a": eye[a][:, None],
            "w_a": torch.ones(m, 1, dtype=torch.float64),
            "obs_b": one.expand(m, 1, 1),
            "act_b": eye[b][:, None],
            "w_b": torch.ones(m, 1, dtype=torch.float64),
            "y": torch.ones(m, dtype=torch.float64),
        }
    n_demo, n_pref = float(d.sum()) if use_demo else 0.0, float(w.sum()) if use_pref else 0.0
    trace: list[float] = []
    prev = None
    for _ in range(steps):
        with torch.no_grad():  # policy alignment: the exact soft-optimal policy (Eq. 42)
            pi = torch.softmax(net.theta[0] / temperature, dim=-1)
        if prev is not None and tol > 0 and float((pi - prev).abs().max()) < tol:
            break
        prev = pi
        agent = (one[None], pi[None]) if use_demo else None
        loss, _ = aihf_loss(net, demo, agent, prefs, n_demo=n_demo, n_pref=n_pref, temperature=temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        trace.append(loss.item())
    with torch.no_grad():
        pi = torch.softmax(net.theta[0] / temperature, dim=-1).numpy()
    return pi, trace


# ------------------------------------------------------------------ tabular KL-regularised MDP
class KLRegularizedMDP:
    """A discounted MDP with the KL-regularised objective of 004 Eq. (7).

    ``V(s) = E_pi[ sum_t gamma^t (r(s_t, a_t) - beta KL(pi(.|s_t) || pi^0(.|s_t))) | s_0 = s ]``.

    Parameters
    ----------
    transitions
        ``P[s, a, s']``, shape ``(S, A, S)``.
    initial
        ``rho(s)``, shape ``(S,)``.
    gamma, beta
        Discount and temperature.
    reference
        ``pi^0(a|s)``, shape ``(S, A)``; default uniform.
    """

    def __init__(self, transitions, initial, gamma: float, beta: float = 1.0, reference=None):
        self.P = np.asarray(transitions, dtype=np.float64)
        S, A, S2 = self.P.shape
        if S != S2 or not np.allclose(self.P.sum(-1), 1.0):
            raise InvalidArgumentError(
                f"transitions must be (S, A, S) with rows summing to 1; got {self.P.shape}"
            )
        self.rho = np.asarray(initial, dtype=np.float64)
        if self.rho.shape != (S,) or not np.isclose(self.rho.sum(), 1.0):
            raise InvalidArgumentError(f"initial must be a distribution over {S} states")
        if not 0 <= gamma < 1 or not beta > 0:
            raise InvalidArgumentError(f"need 0 <= gamma < 1 and beta > 0; got gamma={gamma}, beta={beta}")
        self.gamma, self.beta = float(gamma), float(beta)
        self.ref = np.full((S, A), 1.0 / A) if reference is None else np.asarray(reference, np.float64)
        self.log_ref = np.log(self.ref)
        self.n_states, self.n_actions = S, A

    def state_transitions(self, policy: np.ndarray) -> np.ndarray:
        """``P_pi[s, s'] = sum_a pi(a|s) P[s, a, s']``."""
        return np.einsum("sa,sat->st", policy, self.P)

    def soft_evaluate(self, reward: np.ndarray, policy: np.ndarray) -> np.ndarray:
        """Exact soft Q of ``policy`` (004 Eq. 88): ``Q = r + gamma P [pi (Q - beta log(pi / pi^0))]``."""
        S = self.n_states
        with np.errstate(divide="ignore", invalid="ignore"):
            pen = np.where(policy > 0, policy * (np.log(policy) - self.log_ref), 0.0).sum(-1)
        r_pi = (policy * reward).sum(-1) - self.beta * pen
        v = np.linalg.solve(np.eye(S) - self.gamma * self.state_transitions(policy), r_pi)
        return reward + self.gamma * self.P @ v

    def soft_improve(self, q: np.ndarray) -> np.ndarray:
        """Soft policy improvement ``pi(a|s) ~ pi^0(a|s) exp(Q(s, a) / beta)`` (004 Eq. 40)."""
        logits = self.log_ref + q / self.beta
        z = np.exp(logits - logits.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)

    def soft_optimal(
        self, reward: np.ndarray, tol: float = 1e-12, max_iter: int = 1000, policy0: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The soft-optimal policy of ``reward`` (Eqs. 43-44) and its soft Q.

        Soft policy iteration (exact evaluation, Eq. 88, then improvement, Eq. 40) from
        ``policy0`` (default ``pi^0``) until the policy moves less than ``tol``; it converges
        to the unique fixed point of the soft Bellman optimality operator (004 Lemma A.3).
        Returns ``(pi_theta (S, A), Q (S, A))``.
        """
        pi = self.ref if policy0 is None else np.asarray(policy0, dtype=np.float64)
        for _ in range(max_iter):
            q = self.soft_evaluate(reward, pi)
            new = self.soft_improve(q)
            if np.max(np.abs(new - pi)) < tol:
                return new, q
            pi = new
        return pi, q

    def occupancy(self, policy: np.ndarray) -> np.ndarray:
        """Discounted state-action occupancy ``d(s, a) = sum_t gamma^t P(s_t = s, a_t = a)`` from ``rho``."""
        ds = np.linalg.solve(np.eye(self.n_states) - self.gamma * self.state_transitions(policy).T, self.rho)
        return ds[:, None] * policy

    def sample(self, policy: np.ndarray, n: int, length: int, rng: np.random.Generator):
        """``n`` trajectories of ``length`` steps from ``rho``: ``(states (n, T), actions (n, T))``.

        ``policy`` is ``(S, A)``, or ``(n, S, A)`` for one policy per trajectory.
        """
        S, A = self.n_states, self.n_actions
        cum_pi = np.broadcast_to(np.cumsum(policy, -1), (n, S, A))
        cum_p, cum_rho = np.cumsum(self.P, -1), np.cumsum(self.rho)
        rows = np.arange(n)
        s = np.minimum(np.searchsorted(cum_rho, rng.random(n)), S - 1)
        states, actions = np.empty((n, length), int), np.empty((n, length), int)
        for t in range(length):
            a = np.minimum((rng.random(n)[:, None] > cum_pi[rows, s]).sum(-1), A - 1)
            states[:, t], actions[:, t] = s, a
            s = np.minimum((rng.random(n)[:, None] > cum_p[s, a]).sum(-1), S - 1)
        return states, actions


def demo_log_likelihood(
    mdp: KLRegularizedMDP, features: np.ndarray, theta: np.ndarray, demo_occupancy: np.ndarray
) -> float:
    """Eq. (6): ``L_1(theta) = E_{pi^E}[sum_t gamma^t log pi_theta(a_t|s_t)]``.

    Computed as ``sum_{s, a} d^E(s, a) log pi_theta(a|s)`` with ``d^E`` the expert's occupancy.
    """
    pi, _ = mdp.soft_optimal(features @ theta)
    mask = demo_occupancy > 0
    return float((demo_occupancy[mask] * np.log(pi[mask])).sum())


def lemma41_gradient(
    mdp: KLRegularizedMDP,
    features: np.ndarray,
    theta: np.ndarray,
    demo_occupancy: np.ndarray,
    policy: np.ndarray | None = None,
) -> np.ndarray:
    """Lemma 4.1 (Eq. 18, with the proof's ``1 / beta``).

    ``grad L_1 = (E_{pi^E} - E_{pi_theta})[sum_t gamma^t grad r] / beta``.

    ``policy``: ``pi_theta`` if already computed.
    """
    pi = mdp.soft_optimal(features @ theta)[0] if policy is None else policy
    diff = demo_occupancy - mdp.occupancy(pi)
    return np.einsum("sa,sad->d", diff, features) / mdp.beta


# ------------------------------------------------------------------ Algorithm 1 on a tabular problem
@dataclass
class AIHFProblem:
    """A tabular AIHF problem: MDP, linear reward features, expert, preference data.

    ``r(s, a; theta) = features[s, a] . theta``. Demonstrations are the expert ``pi^E``
    (expectations over it; :attr:`n_demo` trajectories count in the weights), preferences a
    finite set of trajectory pairs summarised by their discounted feature sums
    ``pref_feat_w``, ``pref_feat_l`` ``(|P|, d)`` (winner first).
    """

    mdp: KLRegularizedMDP
    features: np.ndarray
    theta_true: np.ndarray
    expert: np.ndarray
    expert_occupancy: np.ndarray
    pref_feat_w: np.ndarray
    pref_feat_l: np.ndarray
    n_demo: int
    traj_length: int
    weights: tuple[float, float] = field(init=False)

    def __post_init__(self):
        from prefgym.agents.aihf_estimator import paper_weights  # torch-free arithmetic

        self.weights = paper_weights(self.n_demo, len(self.pref_feat_w))

    def objective(self, theta: np.ndarray) -> float:
        """``L = (|D| L_1 + |P| L_2) / (|D| + |P|)`` (004 Eq. 34, normalised)."""
        wd, wp = self.weights
        beta = self.mdp.beta
        l1 = demo_log_likelihood(self.mdp, self.features, theta, self.expert_occupancy)
        l2 = -np.logaddexp(0.0, -((self.pref_feat_w - self.pref_feat_l) @ theta) / beta).mean()
        return wd * l1 + wp * float(l2)

    def gradient(self, theta: np.ndarray, policy: np.ndarray | None = None) -> np.ndarray:
        """Exact ``grad L(theta)``: Lemma 4.1 plus the BTL gradient (Eq. 17a), with ``1 / beta``.

        ``policy``: ``pi_theta`` if already computed.
        """
        wd, wp = self.weights
        beta = self.mdp.beta
        g1 = lemma41_gradient(self.mdp, self.features, theta, self.expert_occupancy, policy)
        diff = self.pref_feat_w - self.pref_feat_l
        g2 = ((1.0 - expit(diff @ theta / beta))[:, None] * diff).mean(0) / beta
        return wd * g1 + wp * g2

    def feature_sums(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``sum_t gamma^t phi(s_t, a_t)`` of sampled trajectories, ``(n, d)``."""
        disc = self.mdp.gamma ** np.arange(states.shape[1])
        return np.einsum("nt,ntd->nd", np.broadcast_to(disc, states.shape), self.features[states, actions])


def random_aihf_problem(
    n_states: int = 6,
    n_actions: int = 3,
    n_features: int = 4,
    gamma: float = 0.7,
    beta: float = 1.0,
    n_demo: int = 100,
    n_pref: int = 200,
    traj_length: int = 40,
    seed: int = 0,
) -> AIHFProblem:
    """A random tabular AIHF problem (our construction; 004 gives none).

    Random dense transitions and initial distribution, features ``N(0, 1)``, a true
    ``theta* ~ N(0, 1)``; the expert is the soft-optimal policy of ``r*`` (Eq. 40).
    Preference pairs: trajectories of ``traj_length`` steps from a mixture of the expert and
    the uniform policy (mixing weight uniform in [0, 1] per trajectory), labelled by BTL on the
    true discounted return at temperature ``beta``.
    """
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    rho = rng.dirichlet(np.ones(n_states))
    mdp = KLRegularizedMDP(P, rho, gamma, beta)
    features = rng.normal(size=(n_states, n_actions, n_features))
    theta_true = rng.normal(size=n_features)
    expert, _ = mdp.soft_optimal(features @ theta_true)
    feats = []
    for _ in range(2):
        mix = rng.random(n_pref)[:, None, None]  # one policy per trajectory
        states, actions = mdp.sample(mix * expert + (1 - mix) * mdp.ref, n_pref, traj_length, rng)
        disc = gamma ** np.arange(traj_length)
        feats.append(np.einsum("t,ntd->nd", disc, features[states, actions]))
    fa, fb = feats
    p_a = expit((fa - fb) @ theta_true / beta)
    a_wins = rng.random(n_pref) < p_a
    fw = np.where(a_wins[:, None], fa, fb)
    fl = np.where(a_wins[:, None], fb, fa)
    return AIHFProblem(mdp, features, theta_true, expert, mdp.occupancy(expert), fw, fl, n_demo, traj_length)


@dataclass
class Algorithm1Result:
    """One run of :func:`run_algorithm1`: Theorem 4.1's two averages and the last iterate."""

    K: int
    policy_gap: float
    grad_norm_sq: float
    theta: np.ndarray
    objective: float


def run_algorithm1(
    problem: AIHFProblem, K: int, alpha0: float = 1.0, batch: int | None = 16, seed: int = 0
) -> Algorithm1Result:
    """Algorithm 1 as analysed in 004 Theorem 4.1, for ``K`` iterations from ``theta = 0``, ``pi = pi^0``.

    Iteration ``k``: (policy alignment) ``pi_{k+1} ~ pi^0 exp(Q^soft_{r_k, pi_k} / beta)``, one soft
    policy-iteration step on exact soft policy evaluation; (reward alignment)
    ``theta_{k+1} = theta_k + alpha g_k`` with ``alpha = alpha0 / sqrt(K)`` and ``g_k`` the
    estimator Eq. (19) with 004's weights and ``1 / beta``: ``batch`` expert trajectories
    against ``batch`` trajectories of ``pi_{k+1}`` and ``batch`` preference pairs (``batch=None``:
    exact expectations and the full preference set).

    Returns the Theorem 4.1 averages ``(1/K) sum_k ||log pi_{k+1} - log pi_theta_k||_inf``
    (Eq. 20a) and ``(1/K) sum_k ||grad L(theta_k)||^2`` (Eq. 20b).
    """
    mdp, feats = problem.mdp, problem.features
    beta = mdp.beta
    wd, wp = problem.weights
    rng = np.random.default_rng(seed)
    alpha = alpha0 / np.sqrt(K)
    theta = np.zeros(feats.shape[-1])
    pi = mdp.ref.copy()
    pi_theta = mdp.ref
    gaps, norms = [], []
    n_pref = len(problem.pref_feat_w)
    for _ in range(K):
        r = feats @ theta
        pi = mdp.soft_improve(mdp.soft_evaluate(r, pi))  # policy alignment: one soft PI step
        pi_theta, _ = mdp.soft_optimal(r, policy0=pi_theta)  # warm start: the previous pi_theta
        gaps.append(float(np.max(np.abs(np.log(pi) - np.log(pi_theta)))))
        norms.append(float(np.sum(problem.gradient(theta, pi_theta) ** 2)))
        if batch is None:  # exact expectations (Eq. 18 under pi_{k+1}) and all pairs
            g1 = np.einsum("sa,sad->d", problem.expert_occupancy - mdp.occupancy(pi), feats)
            idx = np.arange(n_pref)
        else:  # Data Sample I and II
            fe = problem.feature_sums(*mdp.sample(problem.expert, batch, problem.traj_length, rng)).mean(0)
            fa = problem.feature_sums(*mdp.sample(pi, batch, problem.traj_length, rng)).mean(0)
            g1 = fe - fa
            idx = rng.integers(n_pref, size=batch)
        diff = problem.pref_feat_w[idx] - problem.pref_feat_l[idx]
        g2 = ((1.0 - expit(diff @ theta / beta))[:, None] * diff).mean(0)
        theta = theta + alpha * (wd * g1 + wp * g2) / beta  # reward alignment, Eq. (19)
    return Algorithm1Result(K, float(np.mean(gaps)), float(np.mean(norms)), theta, problem.objective(theta))
