"""Step menus that follow the policy's own earlier steps, exact evaluation, a short OMPO / MPO run."""

from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from prefgym.agents.llm.algorithms import OMPOAlgorithm  # noqa: E402
from prefgym.agents.llm.multiturn import (  # noqa: E402
    MultiTurnMenuSource,
    OneStepMPOAlgorithm,
    dialogue_win_rate,
    expected_correct,
    menu_log_probs,
    multiturn_trainer,
    trajectory_distributions,
    trajectory_win_matrices,
)
from prefgym.agents.llm.reasoning_menu import (  # noqa: E402
    ReasoningMenuProblem,
    arithmetic_menu_tasks,
    final_answer_accuracy,
)
from prefgym.data.reasoning import ScriptedSolver, check_step, format_reasoning  # noqa: E402
from prefgym.judges.tasks import ArithmeticStepJudge, FinalAnswerJudge, ScoredJudge  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    from prefgym.llm.policy import LMPolicy
    from prefgym.llm.tiny import tiny_lm

    tasks = arithmetic_menu_tasks(3, seed=0, equations=2)
    model, tok = tiny_lm(seed=0)
    return tasks, ReasoningMenuProblem(tasks), model, tok, LMPolicy


def _lm(setup):
    *_, model, tok, LMPolicy = setup
    return LMPolicy(copy.deepcopy(model), tok)


def test_menus_follow_the_policys_own_steps(setup):
    tasks, problem, *_ = setup
    assert (problem.n, problem.horizon) == (3, 3) and problem.reply_dependent
    solver = ScriptedSolver(tasks, error_rate=0.0)
    for i, t in enumerate(tasks):
        assert problem.state(i, ()) == format_reasoning(t.question, [])
        assert problem.replies(i, (0, 0, 0)) == (*t.steps, f"Answer: {t.answer}")
        for path in problem.trajectories(i):
            for h in range(problem.horizon):
                menu = problem.menu_at(i, path[:h])
                # the correct item is the next line of an error-free solver continuing the policy's lines
                assert menu[0] == solver.generate_text([problem.state(i, path[:h])])[0]
                # exactly one valid step (the step judge's score) per menu
                assert [check_step(y, list(path[:h]), t.question) for y in menu] == [True, False, False]
            assert problem.locate(problem.state(i, path[:2])) == (i, list(path[:2]))
            # mistakes only raise the written values: the answer is right iff every line is valid
            assert problem.answer_correct(i, path) == all(problem.reply_correct(i, path[: h + 1])
                                                          for h in range(problem.horizon))
    # an earlier slip changes the correct next step exactly as the program says
    t, (op, left, right) = tasks[0], tasks[0].program[1]
    slip = problem.menu_at(0, ())[1]  # right side + 1
    value = Fraction(slip.split("= ")[1])
    a, b = (value if x == "@0" else Fraction(int(x)) for x in (left, right))
    r = {"+": a + b, "-": a - b, "*": a * b}[op]
    assert problem.menu_at(0, [slip])[0] == f"{a} {op} {b} = {r}"
    assert problem.menu_at(0, [slip])[0] != problem.menu_at(0, [t.steps[0]])[0] == t.steps[1]
    with pytest.raises(TypeError, match="depend on the earlier replies"):
        problem.menu_at(0, 2)


def test_bad_tasks_are_rejected(setup):
    tasks, *_ = setup
    from prefgym.data.reasoning import ReasoningTask

    with pytest.raises(ValueError, match="no program"):
        ReasoningMenuProblem([ReasoningTask("x", "What is 2 + 2?", "4", ("2 + 2 = 4",))])
    longer = arithmetic_menu_tasks(1, seed=0, equations=3)
    with pytest.raises(ValueError, match="same horizon"):
        ReasoningMenuProblem([tasks[0], *longer])


def test_step_judge_batches(setup):
    tasks, problem, *_ = setup
    src = MultiTurnMenuSource(_lm(setup), problem, ArithmeticStepJudge(eps=0.1), exact=True)
    b = src.collect(problem.first_states, seed=1)
    assert b.shape == (3 * 3, 3)
    for r in range(len(b.prompts)):
        i, replies = problem.locate(b.prompts[r])
        assert b.extra["menus"][r] == problem.menu_at(i, replies)
        expect = 0.5 + 0.4 * np.sign(np.array([1.0, 0, 0])[:, None] - np.array([1.0, 0, 0])[None, :])
        np.testing.assert_allclose(b.extra["menu_win_matrix"][r].numpy(), expect, atol=1e-6)


def test_exact_evaluation_matches_enumeration_and_sampling(setup):
    tasks, problem, *_ = setup
    lm = _lm(setup)
    torch.set_num_threads(1)
    p = trajectory_distributions(lm, problem)
    assert p.shape == (3, 27) and np.allclose(p.sum(-1), 1.0)
    for j in (0, 5, 26):  # brute force: the product of each state's menu probabilities along the path
        path, prob = problem.trajectories(1)[j], 1.0
        for h in range(3):
            st = problem.state(1, path[:h])
            lp = menu_log_probs(lm, [st], [problem.menu_at(1, path[:h])], prefixes=[problem.reply_prefix(st)])
            prob *= float(lp.exp()[0, problem.menu_at(1, path[:h]).index(path[h])])
        assert p[1, j] == pytest.approx(prob, rel=1e-4)
    # Monte Carlo: 4000 solutions of task 0 sampled step by step from each reached state's menu
    rng, n, cache = np.random.default_rng(0), 4000, {}
    lines: list[tuple[str, ...]] = [()] * n
    for _h in range(3):
        for x in set(lines):
            if x not in cache:
                st = problem.state(0, x)
                lp = menu_log_probs(lm, [st], [problem.menu_at(0, x)], prefixes=[problem.reply_prefix(st)])[0]
                cache[x] = lp.double().exp()
        lines = [(*x, problem.menu_at(0, x)[rng.choice(3, p=(cache[x] / cache[x].sum()).numpy())])
                 for x in lines]
    ok = np.array([problem.answer_correct(0, x) for x in lines], float)
    valid = np.array([sum(problem.reply_correct(0, x[: h + 1]) for h in range(3)) for x in lines], float)
    exact = (final_answer_accuracy(p, problem)[0], expected_correct(p, problem)[0])
    for sample, value in zip((ok, valid), exact, strict=True):
        assert abs(sample.mean() - value) < 3 * max(sample.std(), 1e-3) / np.sqrt(n)
    W = trajectory_win_matrices(problem, FinalAnswerJudge(tasks, eps=0.1))
    np.testing.assert_allclose(dialogue_win_rate(p, p, W), 0.5, atol=1e-12)
    acc = final_answer_accuracy(p, problem)
    perfect = np.zeros_like(p)
    perfect[:, 0] = 1.0
    # final-answer judge: P(win) = 1/2 + (1/2 - eps) (acc_p - acc_q) for independent solutions
    np.testing.assert_allclose(dialogue_win_rate(perfect, p, W), 0.5 + 0.4 * (1 - acc), atol=1e-12)


@pytest.mark.parametrize("q", ["one_step", "terminal"])
def test_ompo_and_mpo_raise_the_win_rate(setup, q):
    tasks = setup[0][:2]
    problem = ReasoningMenuProblem(tasks)
    fj = FinalAnswerJudge(tasks, eps=0.1)
    W = trajectory_win_matrices(problem, fj)
    torch.set_num_threads(1)
    p0 = trajectory_distributions(_lm(setup), problem)
    terminal = {"q": "terminal", "terminal_judge": fj} if q == "terminal" else {}
    out = {}
    for name, algo in (("ompo", OMPOAlgorithm(beta=0.7, log_z=0.35)), ("mpo", OneStepMPOAlgorithm(beta=0.7))):
        lm = _lm(setup)
        tr = multiturn_trainer(lm, problem, ArithmeticStepJudge(eps=0.1), algo, num_samples=4,
                               steps_per_iteration=6, learning_rate=1e-4, seed=0, **terminal)
        assert tr.source.q == q and tr._config()["multiturn"]["q"] == q
        rates = []
        for _ in range(2):
            tr.learn(1)
            rates.append(float(dialogue_win_rate(trajectory_distributions(lm, problem), p0, W).mean()))
        out[name] = rates
    assert out["ompo"][0] == pytest.approx(out["mpo"][0], abs=1e-4)  # iteration 1: OMPO = MPO (001)
    for rates in out.values():
        assert rates[-1] > 0.5


def test_quick_reproduction(tmp_path):
    from prefgym.reproductions import get_reproduction

    s = get_reproduction("llm-reasoning").run(tmp_path, quick=True, progress=False)
    for name in ("llm_reasoning_win_rate.png", "llm_reasoning_win_rates.csv", "summary.json"):
        assert (tmp_path / name).exists()
    assert len(s["verdicts"]) == 4
    assert all(v.startswith(("held", "did not hold")) for v in s["verdicts"].values())
    wr = s["runs"]["ompo"]["train_win_rate"]["per_seed"]
    assert wr.shape == (1, 3) and np.all((wr > 0.4) & (wr < 0.6))


# ---------------------------------------------------------------------------- terminal Q (001 G.2)
class _ValidLinesJudge(ScoredJudge):
    """A whole-solution judge with a dense signal: the number of valid lines (tests the estimator)."""

    def __init__(self, tasks, eps=0.1):
        super().__init__(eps)
        self._questions = {t.question for t in tasks}

    def score(self, context, response):
        assert context in self._questions
        lines = response.split("\n")
        return float(sum(check_step(y, lines[:k], context) for k, y in enumerate(lines)))


def _brute_terminal_q(lm, problem, judge, i, prefix, ours_lm=None):
    """Exact terminal Q by explicit enumeration: one menu_log_probs call per state, loops everywhere."""
    ours_lm = lm if ours_lm is None else ours_lm
    H = problem.horizon

    def episodes(pol, pre):  # [(episode, P(episode | pre))] for all continuations of the prefix
        if len(pre) == H:
            return [(tuple(pre), 1.0)]
        menu = problem.menu_at(i, pre)
        st = problem.state(i, pre)
        p = menu_log_probs(pol, [st], [menu], prefixes=[problem.reply_prefix(st)])[0].exp().tolist()
        return [(e, p[k] * w) for k, y in enumerate(menu) for e, w in episodes(pol, [*pre, y])]

    menu = problem.menu_at(i, prefix)
    st = problem.state(i, prefix)
    q_opp = menu_log_probs(lm, [st], [menu], prefixes=[problem.reply_prefix(st)])[0].exp().tolist()
    out = []
    for a in menu:
        mine = episodes(ours_lm, [*prefix, a])
        total = 0.0
        for k, b in enumerate(menu):
            theirs = episodes(lm, [*prefix, b])
            for ea, wa in mine:
                for eb, wb in theirs:
                    p = judge.prob([problem.context(i, H)], [problem.transcript(i, ea)],
                                   [problem.transcript(i, eb)])[0]
                    total += q_opp[k] * wa * wb * float(p)
        out.append(total)
    return np.array(out)


def test_exact_terminal_q_matches_brute_force(setup):
    tasks, problem, *_ = setup
    torch.set_num_threads(1)
    lm, opp = _lm(setup), _lm(setup)
    with torch.no_grad():
        for p in opp.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    judge = _ValidLinesJudge(tasks)
    src = MultiTurnMenuSource(lm, problem, ArithmeticStepJudge(eps=0.1), exact=True, q="terminal",
                              terminal_judge=judge)
    b = src.collect(problem.first_states[:2], seed=0)
    assert b.exact and b.shape == (6, 3) and b.extra["q"] == "terminal"
    for r in (0, 1, 3, 5):  # h = 1, 1, 2, 3
        i, prefix = problem.locate(b.prompts[r])
        np.testing.assert_allclose(b.win_rate[r].numpy(), _brute_terminal_q(lm, problem, judge, i, prefix),
                                   atol=2e-5)
    # OMPO's second term: ours continued by pi_t, the opponent's replies and continuations by pi_{t-1}
    rates, greedy = src.win_rates_against(b, opp, seed=0, greedy=True)
    for r in (0, 3):
        i, prefix = problem.locate(b.prompts[r])
        brute = _brute_terminal_q(opp, problem, judge, i, prefix, ours_lm=lm)
        np.testing.assert_allclose(rates[r].numpy(), brute, atol=2e-5)
    np.testing.assert_allclose(src.exact_terminal_q(b.prompts, opp).numpy(), rates.numpy(), atol=1e-6)
    assert greedy.shape == (6,) and torch.all((greedy >= 0.1) & (greedy <= 0.9))
    # the last step's terminal Q is the one-step Q under the same whole-solution judge
    one = MultiTurnMenuSource(lm, problem, judge, exact=True).collect(problem.first_states[:2], seed=0)
    torch.testing.assert_close(b.win_rate[4:], one.win_rate[4:])
    assert not torch.allclose(b.win_rate[:2], one.win_rate[:2])


def test_sampled_terminal_q_is_unbiased(setup):
    tasks, problem, *_ = setup
    torch.set_num_threads(1)
    lm, opp = _lm(setup), _lm(setup)
    with torch.no_grad():
        for p in opp.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    judge = _ValidLinesJudge(tasks)
    src = MultiTurnMenuSource(lm, problem, ArithmeticStepJudge(eps=0.1), num_samples=4, q="terminal",
                              terminal_judge=judge)
    # the exact Q of every state of both tasks (1 + 3 + 9 each), against pi_t and against the opponent
    states = list(dict.fromkeys(problem.state(i, path[:h]) for i in (0, 1) for path in problem.trajectories(i)
                                for h in range(problem.horizon)))
    q_cur, q_opp = src.exact_terminal_q(states), src.exact_terminal_q(states, opp)
    row = {s: k for k, s in enumerate(states)}
    # 20 independent rollouts in one batch (10 copies of each first state): one pass per level
    reps, B = 10, 2 * 10
    b = src.collect(problem.first_states[:2] * reps, seed=0)
    ep = b.extra["episodes"]
    for r in range(len(b.prompts)):  # K episodes through the state's sampled replies, sample 0 = rollout
        i, prefix = problem.locate(b.prompts[r])
        assert [e[: len(prefix) + 1] for e in ep[r]] == [(*prefix, y) for y in b.texts[r]]
        assert all(len(e) == problem.horizon for e in ep[r])
        if r + B < len(b.prompts):
            assert problem.locate(b.prompts[r + B])[1] == list(ep[r][0][: len(prefix) + 1])
    at = torch.tensor([row[s] for s in b.prompts])
    exact, exact_opp = (q[at].gather(-1, b.menu_index) for q in (q_cur, q_opp))
    against, _ = src.win_rates_against(b, opp, seed=1)
    H = problem.horizon

    def errors(est, ex):  # per rollout (unit): mean error, and its projection on Q - 1/2 (a slope error)
        f = (ex - 0.5).reshape(H, B, -1)
        e = (est - ex).reshape(H, B, -1)
        return e.mean((0, 2)).numpy(), ((e * f).sum((0, 2)) / (f * f).sum((0, 2))).numpy()

    def within(d):  # mean over the independent rollouts within 3 s.e. of 0
        se = d.std(ddof=1) / np.sqrt(len(d))
        return se > 1e-3 and abs(d.mean()) < 3 * se

    for est, ex in ((b.win_rate, exact), (against, exact_opp)):
        assert all(within(d) for d in errors(est, ex))
    # the check has power: a constant Q (the mean of leave-one-out win rates is 1/2) is rejected
    assert not within(errors(torch.full_like(exact, 0.5), exact)[1])
    assert float(b.win_rate.std()) > 0.05


def test_terminal_q_needs_a_terminal_judge(setup):
    tasks, problem, *_ = setup
    lm, step = _lm(setup), ArithmeticStepJudge(eps=0.1)
    with pytest.raises(ValueError, match="terminal_judge"):
        MultiTurnMenuSource(lm, problem, step, q="terminal")
    with pytest.raises(ValueError, match="only used with q='terminal'"):
        MultiTurnMenuSource(lm, problem, step, terminal_judge=FinalAnswerJudge(tasks))
    with pytest.raises(ValueError, match="q must be one of"):
        MultiTurnMenuSource(lm, problem, step, q="intermediate")
    with pytest.raises(ValueError, match="terminal_judge"):
        MultiTurnMenuSource(lm, problem, step).exact_terminal_q(problem.first_states)


def test_the_scored_reply_text_is_the_next_states_text():
    """``state + reply_prefix(state) + reply`` starts the next state, so the LM scores what it will read."""
    from prefgym.agents.llm.multiturn import MultiTurnMenuProblem
    from prefgym.data.dialogue import make_synthetic_dialogue_tasks

    reasoning = ReasoningMenuProblem(arithmetic_menu_tasks(2, seed=0))
    three_turns = [t for t in make_synthetic_dialogue_tasks(24, seed=0) if t.horizon == 3]
    dialogue = MultiTurnMenuProblem(three_turns[:2])
    for problem in (reasoning, dialogue):
        for i in range(len(problem)):
            for path in problem.trajectories(i)[::7]:
                for h in range(problem.horizon - 1):
                    state = problem.state(i, path[:h])
                    nxt = problem.state(i, path[: h + 1])
                    assert nxt.startswith(state + problem.reply_prefix(state) + path[h]), (state, nxt)
    assert reasoning.reply_prefix(reasoning.state(0, ())) == " "
    assert reasoning.reply_prefix(reasoning.state(0, reasoning.trajectories(0)[0][:1])) == "\n"
