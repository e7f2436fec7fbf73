"""Markov-game agents (001 OMPO, MPO-AC, Markov MD, 000's MMD/MPO lifted) against independent checks."""

import numpy as np
import pytest
from scipy.optimize import minimize

from prefgym.agents import (
    AGENTS,
    MMD,
    MPO,
    MWU,
    OMPO,
    OMWU,
    BaseAgent,
    MagneticMPO,
    MarkovMD,
    MarkovMMD,
    NaturalActorCriticMPO,
    StopTrainingOnGap,
    rules,
)
from prefgym.agents.markov import exact_q, exploitability_from_payoff, sampled_q, stage_learning_rates
from prefgym.games import random_skew_symmetric
from prefgym.games.gridworld import random_gridworld
from prefgym.games.markov import TabularMarkovGame
from prefgym.games.step_preference import FeatureStepPreference

MARKOV = (OMPO, NaturalActorCriticMPO, MarkovMD, MarkovMMD, MagneticMPO)


def tiny_game(seed=0, S=3, A=2, H=3, starts=(0,)):
    """Full-support random dynamics and an antisymmetric stage-dependent preference."""
    rng = np.random.default_rng(seed)
    f = rng.dirichlet(np.ones(S), size=(H - 1, S, A))
    M = rng.random((H, S * A, S * A))
    r = (0.5 + 0.5 * (M - M.transpose(0, 2, 1))).reshape(H, S, A, S, A)
    nu = np.zeros(S)
    nu[list(starts)] = 1.0 / len(starts)
    return TabularMarkovGame(f, r, nu, H)


def random_policy(game, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(game.n_actions), size=game.policy_shape[:-1])


@pytest.fixture(scope="module")
def grid():
    return random_gridworld(0, n_states=10, n_actions=3)


# ------------------------------------------------------------------ rules
def test_optimistic_payoff_is_the_optimism_of_optimistic_step():
    rng = np.random.default_rng(0)
    theta, g, g0 = rng.standard_normal((3, 4, 5))
    assert np.allclose(rules.optimistic_step(theta, g, g0, 0.3),
                       rules.mirror_step(theta, rules.optimistic_payoff(g, g0), 0.3), atol=1e-15)


# ------------------------------------------------------------- H = 1 reduction
@pytest.mark.parametrize("form", ["occupancy", "policy"])
def test_h1_ompo_is_omwu_started_from_g0_equal_g1(form):
    """001 App. B.2: at H = 1 OMPO is OMWU; d^0 = d^1 means OMWU with g_0 = g_1 (not 0)."""
    mg = random_skew_symmetric(6, seed=3)
    init = np.random.default_rng(1).dirichlet(np.ones(6))
    omwu = OMWU(mg, learning_rate=0.7, init_policy=init)
    omwu.prev_payoff = omwu._payoff.copy()  # 001's d^0 = d^1
    omwu.learn(200)
    ompo = OMPO(TabularMarkovGame.from_matrix_game(mg), learning_rate=0.7, init_policy=init[None, None],
                form=form).learn(200)
    assert np.abs(ompo.policy[0, 0, 0] - omwu.policy).max() < 1e-12
    assert np.abs(ompo.history["last_gap"] - omwu.history["last_gap"]).max() < 1e-12
    assert np.abs(ompo.average_policy[0, 0, 0] - omwu.average_policy).max() < 1e-12
    assert np.abs(ompo.history["average_gap"] - omwu.history["average_gap"]).max() < 1e-12


@pytest.mark.parametrize("cls", [MarkovMD, NaturalActorCriticMPO])
def test_h1_md_and_mpo_ac_are_mwu(cls):
    mg = random_skew_symmetric(5, seed=2)
    mwu = MWU(mg, learning_rate=0.4).learn(150)
    agent = cls(mg, learning_rate=0.4).learn(150)  # a MatrixGame is lifted to H = 1
    assert np.abs(agent.policy[0, 0, 0] - mwu.policy).max() < 1e-12
    assert np.abs(agent.history["last_gap"] - mwu.history["last_gap"]).max() < 1e-12


@pytest.mark.parametrize(("markov", "matrix", "kw"), [
    (MarkovMMD, MMD, {"alpha": 0.2}),
    (MagneticMPO, MPO, {"alpha": 0.05, "magnet_refresh_every": 7}),
])
def test_h1_magnetic_agents_are_matrix_mmd_and_mpo(markov, matrix, kw):
    mg = random_skew_symmetric(5, seed=6)
    ref = matrix(mg, learning_rate=0.5, **kw).learn(100)
    agent = markov(mg, learning_rate=0.5, **kw).learn(100)
    assert np.abs(agent.policy[0, 0, 0] - ref.policy).max() < 1e-12
    assert np.abs(agent.magnet_policy[0, 0, 0] - ref.magnet_policy).max() < 1e-12


# ------------------------------------------------------------- 001's claims
def pairwise_expected_q(game, pi, opp):
    """``E_{(s',a') ~ d_h^opp} Q_h^{pi, opp}(s, a, s', a')`` by Lemma 2 on joint states (one start)."""
    H, S, A = game.horizon, game.n_states, game.n_actions
    R = game.preference.dense(H) - 0.5
    V = np.zeros((S, S))
    Q = np.zeros((H, S, A, S, A))
    for h in range(H - 1, -1, -1):
        Q[h] = R[h]
        if h + 1 < H:
            f = game.step_transitions(h)
            Q[h] += np.einsum("sax,tby,xy->satb", f, f, V)
        V = np.einsum("sa,tb,satb->st", pi[0, h], opp[0, h], Q[h])
    return np.einsum("hsatb,htb->hsa", Q, game.occupancy(opp)[0])[None]


def test_optimistic_q_identity_claim_4():
    """Sec. 3.2: Q of pi^t for r~ = 2 E_{d^t} Q^{pi^t,pi^t} - E_{d^{t-1}} Q^{pi^t,pi^{t-1}}."""
    game = tiny_game(1)
    p1 = random_policy(game, 2)
    agent = OMPO(game, form="policy", learning_rate=0.9, init_policy=p1).learn(1)
    p2 = agent.policy
    expected = 2 * pairwise_expected_q(game, p2, p2) - pairwise_expected_q(game, p2, p1)
    assert np.abs(agent._hard_q(optimistic=True) - expected).max() < 1e-12


def eq7_maximiser(game, d_t, reward, beta):
    """001 Eq. (7) by SLSQP over occupancies under the flow constraints (one start, full support)."""
    H, S, A = game.horizon, game.n_states, game.n_actions
    s1 = game.initial_states[0]
    free = np.ones((H, S), bool)
    free[0] = False
    free[0, s1] = True  # d_1 lives on the start state only
    mask = np.repeat(free[..., None], A, axis=-1)
    weight = (H - np.arange(H))[:, None, None] / beta  # (H - h + 1) / beta
    pi_t = d_t / d_t.sum(-1, keepdims=True).clip(1e-300)

    def full(x):
        d = np.zeros((H, S, A))
        d[mask] = x
        return d

    def objective(x):
        d = full(x)
        rho = d.sum(-1, keepdims=True)
        log_ratio = np.where(mask, np.log(np.where(mask, d, 1) / np.where(mask, rho, 1)) - np.log(
            np.where(mask, pi_t, 1)), 0.0)
        value = (d * reward).sum() - (weight * d * log_ratio).sum()
        grad = reward - weight * log_ratio
        return -value, -grad[mask]

    rows = []
    for s in range(S):  # sum_a d_1(s, a) = 1{s = s_1}
        row = np.zeros((H, S, A))
        row[0, s] = 1
        rows.append((row, float(s == s1)))
    for h in range(1, H):  # sum_a d_{h+1}(s, a) = sum_{s', a'} f(s | s', a') d_h(s', a')
        for s in range(S):
            row = np.zeros((H, S, A))
            row[h, s] = 1
            row[h - 1] -= game.step_transitions(h - 1)[:, :, s]
            rows.append((row, 0.0))
    rows = [(r[mask], b) for r, b in rows if r[mask].any()]
    Aeq = np.array([r for r, _ in rows])
    beq = np.array([b for _, b in rows])
    res = minimize(objective, d_t[mask], jac=True, method="SLSQP", bounds=[(1e-12, 1)] * int(mask.sum()),
                   constraints=[{"type": "eq", "fun": lambda x: Aeq @ x - beq, "jac": lambda x: Aeq}],
                   options={"ftol": 1e-16, "maxiter": 2000})
    assert res.success, res.message
    return full(res.x)


def test_occupancy_form_step_is_the_eq7_maximiser_claim_6():
    """Thm 10: the soft-Bellman policy step maximises Eq. (7), also with optimism (second step)."""
    game = tiny_game(4)
    beta = 0.8
    R = game.preference.dense(game.horizon) - 0.5
    agent = OMPO(game, learning_rate=beta, init_policy=random_policy(game, 5))
    occ = [agent.occupancy[0].copy()]
    for t in range(2):
        prev = occ[max(t - 1, 0)]  # d^0 = d^1
        reward = np.einsum("hsatb,htb->hsa", R, 2 * occ[t] - prev)
        agent.learn(1)
        occ.append(agent.occupancy[0].copy())
        assert np.abs(occ[-1] - eq7_maximiser(game, occ[t], reward, beta)).max() < 1e-8


def test_two_player_updates_coincide_under_antisymmetry_claim_7():
    """Thm 5: max player phi on r(., ., s', a'), min player psi on r(s', a', ., .), phi^0 = psi^0."""
    game = tiny_game(7)
    H = game.horizon
    R = game.preference.dense(H)  # raw probabilities, both argument orders
    betas = stage_learning_rates(0.9, H)[:, None, None]
    logits = [np.log(random_policy(game, 8))] * 2
    occ = [[game.occupancy(np.exp(logits[0]))[0]] * 2 for _ in range(2)]  # [player][t-1, t]
    for _ in range(30):
        phi_r = np.einsum("hsatb,htb->hsa", R, 2 * occ[1][1] - occ[1][0])
        psi_r = -np.einsum("htbsa,htb->hsa", R, 2 * occ[0][1] - occ[0][0])
        new = []
        for lg, r in zip(logits, (phi_r, psi_r), strict=True):
            pi = np.exp(lg)
            q = exact_q(game, pi, r[None], soft_beta=betas[:, 0, 0])
            new.append(rules.log_normalize(rules.mirror_step(lg, q, betas))[0])
        logits = new
        for i in range(2):
            occ[i] = [occ[i][1], game.occupancy(np.exp(logits[i]))[0]]
        assert np.abs(np.exp(logits[0]) - np.exp(logits[1])).max() < 1e-10


def test_average_policy_has_the_average_occupancy_and_recorded_exploitability_is_exact(grid):
    agent = OMPO(grid, learning_rate=3.0)
    occs = [agent.occupancy.copy()]
    for _ in range(15):
        agent.learn(1)
        occs.append(agent.occupancy.copy())
    avg = agent.average_policy
    assert np.abs(grid.occupancy(avg) - np.mean(occs, axis=0)).max() < 1e-12  # Thm 8 proof
    assert abs(agent.exploitability("average") - grid.exploitability(avg)) < 1e-12
    assert abs(agent.exploitability("last") - grid.exploitability(agent.policy)) < 1e-12
    assert abs(exploitability_from_payoff(grid, grid.stage_payoff(occs[3])) - agent.history[
        "exploitability"][2]) < 1e-12
    assert np.allclose(agent.history["last_gap"], 2 * agent.history["exploitability"])


def test_exploitability_decreases_and_ompo_beats_mpo_ac(grid):
    """Fig. 1a's comparison at 300 updates: OMPO below MPO-AC at every step size tried for MPO-AC."""
    start = grid.exploitability(grid.uniform_policy())
    T = 300
    ompo = {f: OMPO(grid, learning_rate=b, form=f).learn(T).history
            for f, b in (("occupancy", 10.0), ("policy", 4.0))}
    mpo = [NaturalActorCriticMPO(grid, learning_rate=b).learn(T).history for b in (0.1, 0.3, 1.0)]
    for h in ompo.values():
        assert h["average_exploitability"][-1] < 0.05 * start
        assert h["exploitability"][-1] < 0.2 * start
        assert np.all(np.diff(h["average_exploitability"][50:]) < 1e-4)  # near-monotone average
        best_mpo = min(m["average_exploitability"][-1] for m in mpo)
        assert h["average_exploitability"][-1] < 0.5 * best_mpo
        assert h["exploitability"][-1] < min(m["exploitability"][-1] for m in mpo)
    md = MarkovMD(grid, learning_rate=10.0).learn(T).history
    assert md["average_exploitability"][-1] < 0.2 * start
    assert ompo["occupancy"]["average_exploitability"][-1] < md["average_exploitability"][-1]


# ----------------------------------------------------------- sampled Q-hat
@pytest.mark.parametrize("optimistic", [False, True])
def test_sampled_q_is_unbiased_claim_5(optimistic):
    game = tiny_game(3, S=3, A=2, H=3)
    pi, prev = random_policy(game, 1), random_policy(game, 2)
    reward = game.stage_payoff(game.occupancy(pi))
    if optimistic:
        reward = 2 * reward - game.stage_payoff(game.occupancy(prev))
    exact = exact_q(game, pi, reward)
    d = game.occupancy(pi)
    rng = np.random.default_rng(0)
    draws = np.array([sampled_q(game, pi, 40, rng, prev if optimistic else None)
                      for _ in range(300)])  # (n, 2, K, H, S, A)
    q, counts = draws[:, 0], draws[:, 1]
    for h in (0, 1):
        idx = (0, h, *np.unravel_index(d[0, h].argmax(), d[0, h].shape))  # well visited
        seen = counts[(slice(None), *idx)] > 0
        vals = q[(slice(None), *idx)][seen]
        assert seen.mean() > 0.99
        assert abs(vals.mean() - exact[idx]) < 3 * vals.std(ddof=1) / np.sqrt(vals.size)
    unseen = counts == 0
    assert np.all(q[unseen] == 0)  # unvisited (k, h, s, a): Q-hat = 0, a tie


def test_sampled_ompo_learns_and_is_reproducible(grid):
    kw = dict(learning_rate=1.0, form="policy", estimator="sampled", n_samples=2000, seed=11)
    a = OMPO(grid, **kw).learn(150)
    b = OMPO(grid, **kw).learn(150)
    assert np.array_equal(a.policy, b.policy)
    start = grid.exploitability(grid.uniform_policy())
    assert a.history["average_exploitability"][-1] < 0.25 * start
    exact = OMPO(grid, learning_rate=1.0, form="policy").learn(150)
    assert a.history["average_exploitability"][-1] < 1.5 * exact.history["average_exploitability"][-1]
    c = NaturalActorCriticMPO(grid, learning_rate=0.3, estimator="sampled", n_samples=500, seed=0).learn(50)
    assert c.history["average_exploitability"][-1] < start


# ------------------------------------------------- API: save/load, predict
@pytest.mark.parametrize("cls", MARKOV)
def test_save_load_continues_identically(tmp_path, grid, cls):
    kw = {"estimator": "sampled", "n_samples": 32} if cls is not MarkovMD else {}  # rng state, prev policy
    if cls is OMPO:
        kw["form"] = "policy"
    if cls is MarkovMMD:
        kw = {}  # exact Q
    if cls is MagneticMPO:
        kw["magnet_refresh_every"] = 4
    agent = cls(grid, seed=5, init_policy=random_policy(grid, 1), **kw).learn(9)
    path = agent.save(tmp_path / "agent")
    restored = BaseAgent.load(path)
    assert type(restored) is cls and restored.num_iterations == 9
    assert restored.game.layout == grid.layout
    agent.learn(6)
    restored.learn(6)
    assert np.array_equal(agent.policy, restored.policy)
    assert np.array_equal(agent.average_policy, restored.average_policy)
    for key in ("exploitability", "average_exploitability"):
        assert np.array_equal(agent.history[key], restored.history[key])
    assert agent.predict(np.arange(10), state=2)[0].tolist() == restored.predict(np.arange(10), state=2)[
        0].tolist()
    assert cls.load(path, env=grid).game is grid
    with pytest.raises(ValueError, match="policy shape"):
        cls.load(path, env=random_gridworld(0, n_states=10, n_actions=4))


def test_save_load_feature_preference_and_two_starts(tmp_path):
    rng = np.random.default_rng(0)
    S, A, k = 4, 2, 3
    om = rng.standard_normal((k, k)) * 0.1
    pref = FeatureStepPreference(rng.random((S, A, k)), om - om.T)
    game = TabularMarkovGame(rng.dirichlet(np.ones(S), size=(S, A)), pref, [0.5, 0.5, 0, 0], 3)
    agent = OMPO(game, form="policy", learning_rate=1.0).learn(5)
    restored = OMPO.load(agent.save(tmp_path / "f"))
    assert isinstance(restored.game.preference, FeatureStepPreference)
    assert np.array_equal(agent.learn(3).policy, restored.learn(3).policy)
    assert agent.policy.shape == (2, 3, S, A)


def test_predict_uses_the_step_as_recurrent_state(grid):
    agent = OMPO(grid, init_policy=random_policy(grid, 3), seed=0)
    obs = np.full(20_000, 4)
    acts, nxt = agent.predict(obs, state=np.full(20_000, 2))
    assert np.array_equal(nxt, np.full(20_000, 3))
    assert np.allclose(np.bincount(acts, minlength=3) / 20_000, agent.policy[0, 2, 4], atol=0.015)
    a, h = agent.predict(4, state=2, deterministic=True)
    assert a == agent.policy[0, 2, 4].argmax() and h == 3
    _, h = agent.predict(None)  # the start state at h = 0
    assert h == 1
    _, h = agent.predict(np.array([1, 2]), state=np.array([4, 3]), episode_start=np.array([True, False]))
    assert h.tolist() == [1, 4]
    with pytest.raises(ValueError, match="step h"):
        agent.predict(1, state=grid.horizon)
    with pytest.raises(ValueError, match="observation"):
        agent.predict(10)
    two = OMPO(tiny_game(0, starts=(0, 1)))
    with pytest.raises(ValueError, match="start states"):
        two.predict(0)
    assert two.predict(0, state=(1, 1))[1] == (2, 1)


def test_stop_training_on_gap_and_registry(grid):
    agent = OMPO(grid, learning_rate=5.0).learn(2000, callback=StopTrainingOnGap(0.02, which="average"))
    assert agent.num_iterations < 2000 and agent.current_gap("average") <= 0.02
    assert len(agent.history["exploitability"]) == agent.num_iterations
    for cls in MARKOV:
        assert AGENTS[cls.name] is cls
    assert {"ompo", "mpo_ac", "md_markov", "mmd_markov", "mpo_markov"} <= set(AGENTS)


def test_bad_arguments_raise(grid):
    with pytest.raises(ValueError, match="form"):
        OMPO(grid, form="dual")
    with pytest.raises(ValueError, match="estimator"):
        OMPO(grid, estimator="bootstrap")
    with pytest.raises(ValueError, match="soft Q"):
        OMPO(grid, estimator="sampled")  # the occupancy form needs the soft Q
    with pytest.raises(ValueError, match="soft Q"):
        MarkovMD(grid, estimator="sampled")
    with pytest.raises(ValueError, match="n_samples"):
        OMPO(grid, form="policy", estimator="sampled", n_samples=0)
    with pytest.raises(ValueError, match="learning_rate"):
        NaturalActorCriticMPO(grid, learning_rate=-1)
    with pytest.raises(ValueError, match="alpha"):
        MarkovMMD(grid, alpha=0)
    with pytest.raises(ValueError, match="magnet_refresh_every"):
        MagneticMPO(grid, magnet_refresh_every=0)
    with pytest.raises(ValueError, match="magnet must have shape"):
        MarkovMMD(grid, magnet=np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="init_policy must have shape"):
        OMPO(grid, init_policy=np.full((5, 10, 4), 0.25))
    bad = grid.uniform_policy().copy()
    bad[0, 0, 0] = [1, 0, 0]
    with pytest.raises(ValueError, match="full support"):
        OMPO(grid, init_policy=bad)
    with pytest.raises(ValueError, match="batch"):
        OMPO(random_skew_symmetric(3, seed=0, batch=2))
    with pytest.raises(TypeError, match="TabularMarkovGame"):
        OMPO(object())
    with pytest.raises(ValueError, match="which"):
        OMPO(grid).exploitability("best")
