"""Per-state multi-turn menu source, exact dialogue evaluation, and a short OMPO / MPO run."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from prefgym.agents.llm.algorithms import OMPOAlgorithm  # noqa: E402
from prefgym.agents.llm.multiturn import (  # noqa: E402
    ACKNOWLEDGEMENTS,
    UNSURE,
    MultiTurnMenuProblem,
    MultiTurnMenuSource,
    MultiTurnTrainer,
    OneStepMPOAlgorithm,
    dialogue_turn_menu,
    dialogue_win_rate,
    expected_correct,
    load_multiturn_trainer,
    menu_log_probs,
    multiturn_trainer,
    trajectory_distributions,
    trajectory_win_matrices,
)
from prefgym.agents.llm.trainer import SelfPlayTrainer  # noqa: E402
from prefgym.data.dialogue import DialogueTask, make_synthetic_dialogue_tasks  # noqa: E402
from prefgym.judges.base import PairwiseJudge  # noqa: E402
from prefgym.judges.tasks import DialogueTaskJudge  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    from prefgym.llm.policy import LMPolicy
    from prefgym.llm.tiny import tiny_lm

    tasks = [t for t in make_synthetic_dialogue_tasks(12, seed=0) if t.horizon == 3][:2]
    model, tok = tiny_lm(seed=0)
    return tasks, MultiTurnMenuProblem(tasks), model, tok, LMPolicy


def _lm(setup):
    _, _, model, tok, LMPolicy = setup
    return LMPolicy(copy.deepcopy(model), tok)


def test_turn_menus_hold_one_correct_reply(setup):
    tasks, problem, *_ = setup
    assert problem.n == 3 and problem.horizon == 3
    for i, t in enumerate(tasks):
        assert problem.menu_at(i, 1) == ACKNOWLEDGEMENTS
        assert all(t.reply_correct(1, y) for y in ACKNOWLEDGEMENTS)
        for h in (2, 3):
            menu = dialogue_turn_menu(t, h)
            assert [t.reply_correct(h, y) for y in menu] == [True, False, False] and menu[2] == UNSURE
    state = problem.state(0, ["OK."])
    assert problem.locate(state) == (0, ["OK."]) and state.endswith("Assistant:")


def test_menu_log_probs_start_near_uniform(setup):
    _, problem, *_ = setup
    lm = _lm(setup)
    lp = menu_log_probs(lm, [problem.state(0, ())], [problem.menu_at(0, 1)])
    # the uniform-token offset removes the length effect: no reply is ruled out at random init
    assert lp.exp().min() > 0.05 and torch.allclose(lp.exp().sum(), torch.tensor(1.0))


def test_source_builds_per_state_batches(setup):
    tasks, problem, *_ = setup
    lm = _lm(setup)
    judge = DialogueTaskJudge(tasks, scope="last", eps=0.1)
    src = MultiTurnMenuSource(lm, problem, judge, num_samples=3)
    b = src.collect(problem.first_states, seed=3)
    B, H = len(tasks), problem.horizon
    assert b.shape == (B * H, 3) and not b.exact
    assert b.steps.tolist() == [1.0] * B + [2.0] * B + [3.0] * B
    for r in range(B * H):
        i, replies = problem.locate(b.prompts[r])
        h = int(b.steps[r])
        assert len(replies) == h - 1
        menu = problem.menu_at(i, h)
        assert b.texts[r] == [menu[k] for k in b.menu_index[r].tolist()]
        if h < H:  # the rollout continues with the first sample at this state (001 Alg. 2)
            nxt = problem.locate(b.prompts[r + B])
            assert nxt == (i, [*replies, b.texts[r][0]])
        # judge matrix: correct beats wrong with 1 - eps, ties 1/2
        score = np.array([tasks[i].reply_correct(h, y) for y in b.texts[r]], float)
        expect = 0.5 + 0.4 * np.sign(score[:, None] - score[None, :])
        np.testing.assert_allclose(b.win_matrix[r].numpy(), expect, atol=1e-6)
        W = b.win_matrix[r]
        np.testing.assert_allclose(b.win_rate[r].numpy(), ((W.sum(-1) - W.diagonal()) / 2).numpy(), atol=1e-6)
    torch.testing.assert_close(b.old_logp, src.logp(b))
    # exact mode: the whole menu with weights pi_t; against the same policy the win rate is the batch's
    ex = MultiTurnMenuSource(lm, problem, judge, exact=True).collect(problem.first_states, seed=3)
    assert ex.exact and torch.allclose(ex.weights.sum(-1), torch.ones(B * H))
    exact_src = MultiTurnMenuSource(lm, problem, judge, exact=True)
    rates, greedy = exact_src.win_rates_against(ex, lm, 0, greedy=True)
    torch.testing.assert_close(rates, ex.win_rate)
    assert greedy.shape == (B * H,)


def test_exact_dialogue_evaluation(setup):
    tasks, problem, *_ = setup
    lm = _lm(setup)
    p = trajectory_distributions(lm, problem)
    assert p.shape == (2, 27) and np.allclose(p.sum(-1), 1.0)
    # trajectory 0 picks menu item 0 at every turn: the product of the per-state menu probabilities
    prob, replies = 1.0, []
    for h in (1, 2, 3):
        lp = menu_log_probs(lm, [problem.state(0, replies)], [problem.menu_at(0, h)])
        prob *= float(lp.exp()[0, 0])
        replies.append(problem.menu_at(0, h)[0])
    assert p[0, 0] == pytest.approx(prob, rel=1e-4)
    W = trajectory_win_matrices(problem, DialogueTaskJudge(tasks, scope="all", eps=0.1))
    np.testing.assert_allclose(dialogue_win_rate(p, p, W), 0.5, atol=1e-12)
    perfect = np.zeros_like(p)
    perfect[:, 0] = 1.0  # "OK." then the reference replies: every turn correct
    np.testing.assert_allclose(expected_correct(perfect, problem), 3.0)
    assert (dialogue_win_rate(perfect, p, W) > 0.5).all()


def test_ompo_and_mpo_raise_the_win_rate(setup):
    tasks, problem, *_ = setup
    judge = DialogueTaskJudge(tasks, scope="last", eps=0.1)
    W = trajectory_win_matrices(problem, DialogueTaskJudge(tasks, scope="all", eps=0.1))
    torch.set_num_threads(1)
    p0 = trajectory_distributions(_lm(setup), problem)
    out = {}
    for name, algo in (("ompo", OMPOAlgorithm(beta=0.7, log_z=0.35)), ("mpo", OneStepMPOAlgorithm(beta=0.7))):
        lm = _lm(setup)
        tr = multiturn_trainer(lm, problem, judge, algo, num_samples=4, steps_per_iteration=8,
                               learning_rate=1e-4, seed=0)
        rates = []
        for _ in range(2):
            tr.learn(1)
            rates.append(float(dialogue_win_rate(trajectory_distributions(lm, problem), p0, W).mean()))
        out[name] = rates
        assert tr.history[-1]["loss"] < tr.history[-1]["loss_first"]  # the regression is fitted
    assert out["ompo"][0] == pytest.approx(out["mpo"][0], abs=1e-4)  # iteration 1: OMPO = MPO (001)
    for rates in out.values():
        assert rates[-1] > 0.5  # better than the base model under the exact whole-dialogue judge


# ------------------------------------------------------------------ save / resume
class _FailingJudge(PairwiseJudge):
    """Delegates to a judge, raising on call number ``fail_at`` (a run killed mid-iteration)."""

    def __init__(self, judge, fail_at=None):
        self.judge, self.calls, self.fail_at = judge, 0, fail_at

    def _prob(self, contexts, a, b):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed")
        return self.judge._prob(contexts, a, b)


def _same(a, b):
    pa, pb = a.lm.model.parameters(), b.lm.model.parameters()
    return all(torch.equal(x, y) for x, y in zip(pa, pb, strict=True))


def test_killed_run_resumes_bit_for_bit_and_checks_the_problem(setup, tmp_path):
    tasks, problem, *_ = setup
    judge = DialogueTaskJudge(tasks, scope="last", eps=0.1)
    common = {"num_samples": 3, "steps_per_iteration": 2, "learning_rate": 1e-3, "seed": 5}
    torch.set_num_threads(1)
    counting = _FailingJudge(judge)
    full = multiturn_trainer(_lm(setup), problem, counting, OMPOAlgorithm(beta=0.7, log_z=0.35), **common)
    full.learn(2)
    calls_after_two = counting.calls
    full.learn(1)
    assert counting.calls > calls_after_two  # iteration 3 visits new states: the kill lands inside it
    run = tmp_path / "run"
    killed = multiturn_trainer(_lm(setup), problem, _FailingJudge(judge, fail_at=calls_after_two + 1),
                               OMPOAlgorithm(beta=0.7, log_z=0.35), output_dir=run, **common)
    with pytest.raises(KeyboardInterrupt):
        killed.learn(3)
    resumed = load_multiturn_trainer(run, problem, judge, policy=_lm(setup), output_dir=run)
    assert isinstance(resumed, MultiTurnTrainer) and resumed.num_iterations == 2
    assert isinstance(resumed.source, MultiTurnMenuSource) and resumed.source.k == 3
    resumed.learn(1)
    assert _same(full, resumed)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    # the policy can also be rebuilt from the checkpoint, and the algorithm (incl. mpo_001) by name
    path = resumed.save(tmp_path / "saved")
    again = load_multiturn_trainer(path, problem, judge)
    assert again.num_iterations == 3 and _same(resumed, again)
    mpo = multiturn_trainer(_lm(setup), problem, judge, OneStepMPOAlgorithm(beta=0.5), **common).learn(1)
    assert load_multiturn_trainer(mpo.save(tmp_path / "mpo"), problem, judge).algorithm == mpo.algorithm
    # another problem (other tasks, or other menus) is refused, as is the generic loader
    three_turn = [t for t in make_synthetic_dialogue_tasks(12, seed=0) if t.horizon == 3]
    other = MultiTurnMenuProblem(three_turn[1:3])
    with pytest.raises(ValueError, match="different problem"):
        load_multiturn_trainer(run, other, judge)
    relabel = MultiTurnMenuProblem(tasks, menu=lambda t, h: tuple(reversed(dialogue_turn_menu(t, h))))
    with pytest.raises(ValueError, match="different problem"):
        multiturn_trainer(_lm(setup), relabel, judge, OMPOAlgorithm(beta=0.7, log_z=0.35), resume_from=run,
                          **common)
    with pytest.raises(TypeError, match="load_multiturn_trainer"):
        MultiTurnTrainer.load(run, judge=judge)
    with pytest.raises(ValueError, match="holds a MultiTurnTrainer"):
        SelfPlayTrainer.load(run, judge=judge)


# ------------------------------------------------------------------ terminal Q (001 G.2)
def test_terminal_q_with_one_turn_is_the_one_step_q(setup):
    tasks, _, model, tok, LMPolicy = setup
    one_turn = [DialogueTask(f"{t.id}-1", (t.turns[1],), references=(t.references[1],),
                             distractors=(t.distractors[1],)) for t in tasks]
    problem = MultiTurnMenuProblem(one_turn)
    assert problem.horizon == 1
    judge = DialogueTaskJudge(one_turn, scope="all", eps=0.1)
    lm = _lm(setup)
    for exact in (False, True):
        one = MultiTurnMenuSource(lm, problem, judge, exact=exact, num_samples=3)
        term = MultiTurnMenuSource(lm, problem, judge, exact=exact, num_samples=3, q="terminal",
                                   terminal_judge=judge)
        a, b = one.collect(problem.first_states, seed=4), term.collect(problem.first_states, seed=4)
        assert a.texts == b.texts and torch.equal(a.menu_index, b.menu_index)
        torch.testing.assert_close(a.win_matrix, b.win_matrix)
        torch.testing.assert_close(a.win_rate, b.win_rate)
        opp = _lm(setup)
        with torch.no_grad():
            next(opp.model.parameters()).mul_(1.5)
        for greedy in (False, True):
            ra, ga = one.win_rates_against(a, opp, seed=2, greedy=greedy)
            rb, gb = term.win_rates_against(b, opp, seed=2, greedy=greedy)
            torch.testing.assert_close(ra, rb)
            if greedy:
                torch.testing.assert_close(ga, gb)


def test_terminal_q_on_dialogues_and_checkpoints(setup, tmp_path):
    tasks, problem, *_ = setup
    step = DialogueTaskJudge(tasks, scope="last", eps=0.1)
    whole = DialogueTaskJudge(tasks, scope="all", eps=0.1)
    lm = _lm(setup)
    ex = MultiTurnMenuSource(lm, problem, step, exact=True, q="terminal", terminal_judge=whole)
    b = ex.collect(problem.first_states, seed=0)
    one = MultiTurnMenuSource(lm, problem, step, exact=True).collect(problem.first_states, seed=0)
    assert b.prompts == one.prompts  # the same main rollout; only the Q differs
    # turn 1 (acknowledgements, all correct): no one-step signal, but the terminal Q sees the later turns
    torch.testing.assert_close(one.win_rate[:2], torch.full((2, 3), 0.5))
    assert not torch.allclose(b.win_rate[:2], one.win_rate[:2])
    torch.testing.assert_close(b.win_rate, ex.exact_terminal_q(b.prompts))
    common = {"num_samples": 3, "steps_per_iteration": 1, "learning_rate": 1e-3, "seed": 5}
    tr = multiturn_trainer(lm, problem, step, OneStepMPOAlgorithm(beta=0.5), q="terminal",
                           terminal_judge=whole, **common).learn(1)
    path = tr.save(tmp_path / "terminal")
    with pytest.raises(ValueError, match="terminal_judge"):
        load_multiturn_trainer(path, problem, step)
    again = load_multiturn_trainer(path, problem, step, terminal_judge=whole)
    assert again.source.q == "terminal" and again.source.terminal_judge is whole


def test_bad_inputs_raise_and_the_judge_is_called_once_per_collect(setup):
    tasks, problem, *_ = setup
    judge = DialogueTaskJudge(tasks, scope="last", eps=0.1)
    # OMPO's default log Z_h = beta (H - h + 1) / 2 is not the tie value (1/2 at every turn) of this Q
    with pytest.raises(ValueError, match="log_z"):
        multiturn_trainer(_lm(setup), problem, judge, OMPOAlgorithm(beta=0.7))
    with pytest.raises(ValueError, match="log_z"):
        multiturn_trainer(_lm(setup), problem, judge, "ompo", beta=0.7)
    counting = _FailingJudge(judge)
    src = MultiTurnMenuSource(_lm(setup), problem, counting, exact=True)
    with pytest.raises(ValueError, match="first states"):
        src.collect([problem.state(0, ["OK."])], seed=0)
    b = src.collect(problem.first_states, seed=0)
    assert counting.calls == 1  # all the states' menus in one batched judge call
    for r, (i, prefix) in enumerate(zip(b.extra["tasks"], b.extra["prefixes"], strict=True)):
        texts = [problem.transcript(i, [*prefix, y]) for y in b.extra["menus"][r]]
        expect = judge.prob([problem.context(i, len(prefix) + 1)] * 9, [x for x in texts for _ in texts],
                            [y for _ in texts for y in texts]).reshape(3, 3)
        np.testing.assert_allclose(b.extra["menu_win_matrix"][r].numpy(), expect, atol=1e-6)
    src.collect(problem.first_states, seed=0)
    assert counting.calls == 1  # the same states again: cached
