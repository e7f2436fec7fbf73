"""Reproductions (quick budgets): the shape of each paper claim, with the measured numbers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from prefgym.agents import MMD, OMWU
from prefgym.agents.callbacks import RecordPolicy
from prefgym.games import MatrixGame, planted_nash, random_skew_symmetric, rps
from prefgym.reproductions import REPRODUCTIONS, get_reproduction
from prefgym.reproductions.analysis import first_below, select_learning_rate, tail_fit
from prefgym.reproductions.mpo_fig3 import ALPHAS, skew_game
from prefgym.reproductions.solvers import (
    l1_distance_to_nash_set,
    max_entropy_nash,
    regularized_nash,
)
from prefgym.simplex import kl


@pytest.fixture(scope="module")
def fig2(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig2")
    return out, REPRODUCTIONS["omwu-fig2"].run(out, quick=True, progress=False)


@pytest.fixture(scope="module")
def fig3(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig3")
    return out, get_reproduction("mpo-fig3").run(out, quick=True, progress=False)


def _verdicts_are_well_formed(summary):
    assert summary["verdicts"]
    for text in summary["verdicts"].values():
        assert text.startswith(("held: ", "did not hold: ", "inconclusive: "))


# ------------------------------------------------------------------ omwu-fig2
def test_omwu_fig2_outputs(fig2):
    out, summary = fig2
    for name in ("omwu_fig2.png", "omwu_fig2_tau.png", "omwu_fig2_curves.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    with open(out / "omwu_fig2_curves.csv") as fh:
        header = next(csv.reader(fh))
    assert header[0] == "iteration" and "omwu_last_mean" in header and "md_average_std" in header
    _verdicts_are_well_formed(summary)


def test_omwu_fig2_claims_shape(fig2):
    _, s = fig2
    omwu_final = np.asarray(s["omwu"]["final_last_gap"])
    md_last, md_avg = np.asarray(s["md"]["last_final"]), np.asarray(s["md"]["average_final"])
    # (i) OMWU's last iterate is orders of magnitude below MD's last iterate, game by game
    assert (omwu_final < 1e-3 * md_last).all()
    assert (np.asarray(s["omwu"]["tail_slope_decades_per_1000"]) < 0).all()
    # (ii) MD: the average iterate beats the last iterate, which stays far from 0
    assert (md_avg < md_last).all() and np.median(md_last) > 1e-2
    # (iii) regularised plateaus sit at the regularised NE's gap, far above OMWU's gap
    for key, row in s["regularized"].items():
        final, ref = np.asarray(row["final_gap"]), np.asarray(row["regularized_ne_gap"])
        assert final.min() > 100 * omwu_final.max(), key
        assert np.allclose(final, ref, rtol=0.2), key
    egpo = s["regularized"]["egpo_tau0.01"]
    np.testing.assert_allclose(egpo["final_gap"], egpo["regularized_ne_gap"], rtol=1e-6)
    assert (np.asarray(s["regularized"]["egpo_tau0.1"]["final_gap"])
            > np.asarray(egpo["final_gap"])).all()
    # the chosen OMWU rate is the one the selection rule ranks first
    sweep = s["omwu"]["sweep"]
    best = max(sweep, key=lambda e: (sweep[e]["converged"], -sweep[e]["mean_log10_gap"]))
    assert best == s["omwu"]["eta"]


# ------------------------------------------------------------------ mpo-fig3
def test_mpo_fig3_outputs(fig3):
    out, summary = fig3
    for name in ("mpo_fig3_simplex.png", "mpo_fig3_gap.png", "mpo_fig3_curves.csv",
                 "mpo_fig3_trajectories.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    traj = np.loadtxt(out / "mpo_fig3_trajectories.csv", delimiter=",", skiprows=1)
    assert traj.shape[1] == 1 + 3 * (2 + len(ALPHAS))
    np.testing.assert_allclose(traj[0, 1:4], [0.6, 0.3, 0.1])
    np.testing.assert_allclose(traj[:, 1:].reshape(len(traj), -1, 3).sum(-1), 1.0, atol=1e-9)
    _verdicts_are_well_formed(summary)


def test_mpo_fig3_claims_shape(fig3):
    _, s = fig3
    # MD cycles: its last-iterate gap stays large, KL to the NE grows; the average does better
    assert s["md"]["final_last_gap"] > 1e-2
    assert s["md"]["final_average_gap"] < s["md"]["final_last_gap"] / 10
    assert s["md"]["kl_ne_to_policy_non_decreasing"]
    # MMD converges to the independently solved regularised NE, faster for larger alpha
    rows = [s["mmd"][al] for al in ALPHAS]
    assert max(r["max_abs_error_final"] for r in rows) < 1e-8
    assert all(r["thm32_bound_violations"] == 0 for r in rows)
    steps = [r["updates_to_l1_1e-6"] for r in rows]
    assert all(0 < b < a for a, b in zip(steps, steps[1:], strict=False))
    # every regularised NE is off the original NE; MPO reaches it
    assert min(r["reg_ne_gap"] for r in rows) > 1e-2
    assert s["mpo"]["final_gap"] < 1e-6 and s["mpo"]["l1_to_ne"] < 1e-6
    # random n=10 games: iteration counts of notes 000 Sec. 6 are reproduced exactly
    notes = s["random_games"]["notes_calibration"]["mmd_updates_to_kl_1e-10"]
    for al in ALPHAS:
        assert list(s["random_games"]["mmd"][al]["updates_to_kl_1e-10"]) == list(notes[al])


def test_mmd_fixed_point_matches_independent_solve():
    game, _ = skew_game()
    ref = regularized_nash(game.payoff, 0.5)
    # fixed point of pi ~ magnet exp(A pi / alpha) with a uniform magnet
    target = np.exp(game.payoff @ ref / 0.5)
    np.testing.assert_allclose(ref, target / target.sum(), atol=1e-14)
    assert game.regularized_duality_gap(ref, 0.5) < 1e-12
    mmd = MMD(game, learning_rate=0.1, alpha=0.5, magnet=np.full(3, 1 / 3),
              init_policy=[0.6, 0.3, 0.1]).learn(2000)
    np.testing.assert_allclose(mmd.policy, ref, atol=1e-8)


# ------------------------------------------------------------------- solvers
def test_regularized_nash_small_tau_and_reference():
    game = random_skew_symmetric(6, seed=4)
    ref = np.array([0.3, 0.1, 0.1, 0.2, 0.2, 0.1])
    pi = regularized_nash(game.payoff, 0.01, reference=ref)
    assert game.regularized_duality_gap(pi, 0.01, ref) < 1e-12
    assert game.duality_gap(pi) < 0.05  # close to an NE for a small tau
    np.testing.assert_allclose(regularized_nash(rps().payoff, 0.1), np.full(3, 1 / 3), atol=1e-12)


def test_max_entropy_nash_beats_every_planted_equilibrium():
    game, planted = planted_nash(8, rank=3, seed=2, return_planted=True)
    pi = max_entropy_nash(game.payoff)
    assert np.abs(game.payoff_vector(pi)).max() < 1e-12
    u = np.full(8, 1 / 8)
    assert (kl(pi, u) <= kl(planted, u) + 1e-12).all()
    # OMWU from uniform converges to it (002 Remark 2)
    agent = OMWU(game, learning_rate=4.0).learn(20000)
    assert agent.current_gap() < 1e-12
    np.testing.assert_allclose(agent.policy, pi, atol=1e-8)


def test_l1_distance_to_nash_set():
    game = rps()
    assert l1_distance_to_nash_set(game.payoff, np.full(3, 1 / 3)) == pytest.approx(0, abs=1e-12)
    assert l1_distance_to_nash_set(game.payoff, np.array([1.0, 0, 0])) == pytest.approx(4 / 3)
    g, planted = planted_nash(6, rank=2, seed=0, return_planted=True)
    mid = planted.mean(axis=0)  # the NE set is convex
    assert l1_distance_to_nash_set(g.payoff, mid) == pytest.approx(0, abs=1e-9)


# ------------------------------------------------------------------ analysis
def test_tail_fit_and_first_below():
    t = np.arange(5000)
    gap = 10.0 ** (-1 - t / 500)  # 2 decades per 1000 updates, above 1e-12 throughout
    fit = tail_fit(gap)
    assert fit["slope_per_1000"] == pytest.approx(-2.0) and fit["r2"] == pytest.approx(1.0)
    assert (fit["start"], fit["stop"]) == (2500, 5000)
    steep = np.maximum(10.0 ** (-1 - t / 250), 1e-16)  # reaches the 1e-12 floor near t = 2750
    fit = tail_fit(steep)
    assert fit["stop"] in (2750, 2751) and fit["start"] == fit["stop"] // 2
    assert fit["slope_per_1000"] == pytest.approx(-4.0)
    sub = 1.0 / (1.0 + t)  # sublinear: the fitted window drops far less than 2 decades
    assert tail_fit(sub)["decades"] < 0.5
    g = np.array([[1.0, 1.0], [1e-7, 1.0], [1e-3, 1e-7], [1e-8, 1e-8]])
    np.testing.assert_array_equal(first_below(g, 1e-6), [4, 3])
    np.testing.assert_array_equal(first_below(g[:, :1] * 0 + 1, 1e-6), [-1])


def test_select_learning_rate_prefers_converged_then_fast():
    T = 10
    fast = np.full((T, 2), 1e-9)
    slow = np.full((T, 2), 1e-7)
    half = np.stack([np.full(T, 1e-12), np.full(T, 1.0)], axis=1)
    best, table = select_learning_rate({1.0: slow, 2.0: fast, 4.0: half}, 1e-6)
    assert best == 2.0 and table[4.0]["converged"] == 1 and table[1.0]["converged"] == 2


def test_record_policy_callback():
    rec = RecordPolicy(every=2)
    agent = OMWU(MatrixGame(rps().preference), learning_rate=0.1,
                 init_policy=[0.6, 0.3, 0.1]).learn(5, callback=rec)
    assert rec.iterations == [0, 2, 4]
    np.testing.assert_allclose(rec.policies[0], [0.6, 0.3, 0.1])
    assert agent.num_iterations == 5
    with pytest.raises(ValueError, match="every"):
        RecordPolicy(every=0)


# ------------------------------------------------------------------ ompo-gridworld
@pytest.fixture(scope="module")
def ompo_grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("ompo_grid")
    return out, get_reproduction("ompo-gridworld").run(out, quick=True, progress=False)


def test_ompo_gridworld_outputs(ompo_grid):
    out, summary = ompo_grid
    for name in ("ompo_gridworld.png", "ompo_gridworld_curves.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    with open(out / "ompo_gridworld_curves.csv") as fh:
        header = next(csv.reader(fh))
    for key in ("ompo_last_mean", "ompo_average_std", "mpo_average_mean", "ompo_policy_last_max",
                "ompo_theory_average_mean", "mpo_theory_last_mean"):
        assert key in header
    _verdicts_are_well_formed(summary)
    assert len(summary["verdicts"]) == 6


def test_ompo_gridworld_claims_shape(ompo_grid):
    _, s = ompo_grid
    T = s["settings"]["updates"]
    expl = s["exploitability"]
    # the claim's shape: OMPO's mean average-iterate exploitability is below MPO's at the end,
    # and at every checkpoint for both iterates (each at its selected step size)
    ompo_avg, mpo_avg = expl["ompo"]["average"]["mean_at"][T], expl["mpo"]["average"]["mean_at"][T]
    assert ompo_avg < 0.5 * mpo_avg, (ompo_avg, mpo_avg)
    for it in ("last", "average"):
        for t in s["settings"]["checkpoints"]:
            assert expl["ompo"][it]["mean_at"][t] < expl["mpo"][it]["mean_at"][t], (it, t)
    # OMPO reaches MPO's final average-iterate level well before T
    assert 0 < s["speed"]["average"]["ompo_updates_to_that_level"] < T // 2
    # learning happened: the first checkpoint is above the last one for the average iterates
    t0 = s["settings"]["checkpoints"][0]
    assert expl["ompo"]["average"]["mean_at"][T] < 0.2 * expl["ompo"]["average"]["mean_at"][t0]
    # Thm 4's bound is never violated at beta = 1/sqrt(2)
    assert s["theorem4"]["violations"] == 0 and s["theorem4"]["max_ratio_to_bound"] < 1
    # the selected step sizes are the ones the fixed rule ranks first
    for method, per_it in s["sweep"].items():
        for it, table in per_it.items():
            best = min(table, key=lambda b: (table[b]["final_10pct_mean_log10"],
                                             table[b]["all_updates_mean_log10"]))
            assert float(best) == s["chosen_beta"][method][it]


def test_select_step_rule_and_blas_threads():
    from prefgym.reproductions.ompo_gridworld import blas_threads, select_step

    T = 20
    slow = np.full((T, 2), 1e-2)
    fast = np.full((T, 2), 1e-3)
    floor_early = np.concatenate([np.full((T // 2, 2), 1e-20), np.full((T // 2, 2), 1e-14)])
    floor_late = np.concatenate([np.full((T // 2, 2), 1e-2), np.full((T // 2, 2), 1e-15)])
    nan = np.full((T, 2), np.nan)
    best, table = select_step({0.1: slow, 1.0: fast, 3.0: nan})
    assert best == 1.0 and table[3.0]["final_10pct_mean_log10"] == np.inf
    # both reach the 1e-12 floor over the final 10%: the faster one (smaller area) wins
    assert select_step({1.0: floor_late, 2.0: floor_early})[0] == 2.0
    with blas_threads(1) as before:
        pass
    with blas_threads(1) as again:
        assert again == before  # the previous count was restored


# ------------------------------------------------------------------ aihf-mujoco (004 Fig. 5 / Table 1)
@pytest.fixture(scope="module")
def aihf_mujoco(tmp_path_factory):
    import importlib.util

    if importlib.util.find_spec("mujoco") is None or importlib.util.find_spec("minari") is None:
        pytest.skip("needs mujoco and minari")
    out = tmp_path_factory.mktemp("aihf_mujoco")
    return out, get_reproduction("aihf-mujoco").run(out, quick=True, progress=False)


def test_aihf_mujoco_quick_outputs_and_curves(aihf_mujoco):
    out, s = aihf_mujoco
    for name in ("aihf_mujoco.png", "aihf_mujoco_curves.csv", "aihf_mujoco_data_quality.csv",
                 "preferences.npz", "summary.json"):
        assert (out / name).stat().st_size > 0
    with open(out / "aihf_mujoco_curves.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["env_steps", "aihf_mean", "aihf_std"]
    assert [r[0] for r in rows[1:]] == ["0", "500", "1000"]
    assert s["settings"]["budget"] == "quick" and s["settings"]["env"] == "InvertedPendulum-v5"
    cap = s["settings"]["env_kwargs"]["max_episode_steps"]
    for mode in ("aihf", "rlhf", "irl"):
        curve = np.asarray(s["true_return"][mode]["mean"])
        assert curve.shape == (3,) and np.isfinite(curve).all() and (curve > 0).all() and (curve <= cap).all()
    # every learner's reward ranks held-out rollouts by true return (rank correlation)
    assert all(np.isfinite(r["reward_rank_correlation"]) for r in s["runs"])
    _verdicts_are_well_formed(s)
    assert len(s["verdicts"]) == 4


def test_aihf_mujoco_data_quality_table_orders_the_tiers(aihf_mujoco):
    _, s = aihf_mujoco
    t = s["data_quality"]
    # 004 Table 1's ordering, a property of the checkpoint tiers: non-preferred < preferred < demonstrations
    assert t["non_prefer"]["mean_return"] < t["prefer"]["mean_return"] < t["demonstration"]["mean_return"]
    assert t["segments_preferred"]["mean_return"] > t["segments_rejected"]["mean_return"]  # oracle teacher
    assert t["demonstrations_used"]["steps"] >= 400 and t["demonstrations_used"]["mean_return"] > 0
    assert s["verdicts"]["(iv) data quality as in 004 Table 1: non-preferred < preferred < demonstrations"
                         ].startswith("held")


def test_reproduction_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="takes no option"):
        get_reproduction("omwu-fig2").run(tmp_path, quick=True, budget="small")
    with pytest.raises(ValueError, match="budget must be one of"):
        get_reproduction("aihf-mujoco").run(tmp_path, budget="huge")


# ------------------------------------------------------------------ llm-menu and llm-spo
@pytest.fixture(scope="module")
def llm_menu(tmp_path_factory):
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("llm_menu")
    return out, get_reproduction("llm-menu").run(out, quick=True, progress=False)


def test_llm_menu_quick_outputs(llm_menu):
    from prefgym.reproductions.llm_menu import OMWU_ETAS, RESPONSES, choose_game

    out, s = llm_menu
    for name in ("llm_menu_gap.png", "llm_menu_simplex.png", "llm_menu_omwu_eta.png", "llm_menu_curves.csv",
                 "summary.json"):
        assert (out / name).stat().st_size > 0
    _verdicts_are_well_formed(s)
    assert len(s["verdicts"]) == 5
    T = s["settings"]["iterations"]
    with open(out / "llm_menu_curves.csv") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == T + 1 and {"omwu_gap_mean", "mpo_current_tabular_gap_mean", "dpo_beta0.1_gap_max",
                                  "omwu_step_kl"} <= set(rows[0])
    game, seed, ne = choose_game()
    assert ne.min() >= 0.1 and all(planted_nash(3, 1, seed=k).nash_equilibrium().min() < 0.1
                                   for k in range(seed))
    assert s["selection"]["omwu_eta"] in OMWU_ETAS
    for r in s["runs"].values():
        np.testing.assert_allclose(np.asarray(r["final_probs"]).sum(-1), 1.0, atol=1e-6)
        assert np.asarray(r["final_probs"]).shape == (4, len(RESPONSES))
    assert set(s["omwu_eta_sweep_post_hoc"]) == {"note", *(f"eta={e:g}" for e in OMWU_ETAS)}


def test_llm_menu_tabular_dynamics_are_the_rules():
    from prefgym.agents import MPO, OMWU
    from prefgym.reproductions.llm_menu import tabular_gaps

    game = planted_nash(3, 1, seed=2)
    pi0 = np.array([[0.3, 0.33, 0.37]])
    gaps, pis = tabular_gaps(game, pi0, 50, "omwu", eta=1.0)
    agent = OMWU(game, learning_rate=1.0, init_policy=pi0[0])
    agent.prev_payoff = game.payoff_vector(pi0[0])  # the trainer's first step: g_{-1} = g_0
    agent.learn(50)
    np.testing.assert_allclose(pis[-1, 0], agent.policy, atol=1e-12)
    # with the current iterate as opponent and no annealing (a huge period) it is the tabular MPO
    gaps, pis = tabular_gaps(game, pi0, 30, "mpo", alpha=0.1, period=10**9, eta=1.0, opponent="current")
    agent = MPO(game, learning_rate=1.0, alpha=0.1, magnet_refresh_every=None, init_policy=pi0[0])
    expected = agent.learn(30).policy
    assert np.abs(pis[-1, 0] - expected).max() < 1e-6


@pytest.fixture(scope="module")
def llm_spo(tmp_path_factory):
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("llm_spo")
    return out, get_reproduction("llm-spo").run(out, quick=True, progress=False)


def test_llm_spo_quick_outputs(llm_spo):
    from prefgym.reproductions.llm_spo import ALPHAS, REWARDS, target

    out, s = llm_spo
    for name in ("llm_spo_kl.png", "llm_spo_curves.csv", "llm_spo_final_probs.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    _verdicts_are_well_formed(s)
    assert len(s["runs"]) == 2 * len(ALPHAS)
    for r in s["runs"].values():
        assert r["kl_after"] < r["kl_before"]  # even three iterations move towards Softmax(r / alpha)
    np.testing.assert_allclose(target(1.0), np.exp(REWARDS) / np.exp(REWARDS).sum())
    assert target(0.5).max() > target(1.0).max() > target(2.0).max()


@pytest.fixture(scope="module")
def llm_multiturn(tmp_path_factory):
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("llm_multiturn")
    return out, get_reproduction("llm-multiturn").run(out, quick=True, progress=False)


def test_llm_multiturn_quick_outputs(llm_multiturn):
    out, s = llm_multiturn
    for name in ("llm_multiturn_win_rate.png", "llm_multiturn_win_rates.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    _verdicts_are_well_formed(s)
    assert set(s["runs"]) == {"ompo", "mpo"}
    for r in s["runs"].values():
        assert len(r["train_win_rate"]["mean"]) == 3
        assert r["train_win_rate"]["mean"][-1] > 0.5  # three short iterations already beat the base model
    # iteration 1 of OMPO and MPO coincide (001: no previous iterate yet)
    assert s["runs"]["ompo"]["train_win_rate"]["mean"][0] == pytest.approx(
        s["runs"]["mpo"]["train_win_rate"]["mean"][0], abs=1e-4)
