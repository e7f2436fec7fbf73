"""OMWU-neural (002 Sec. 5.2) on a menu: the loss, the trainer's wiring of ``pi_{t-1}``, and inner solves.

The llm-menu reproduction's OMWU arm failed at ``eta = 4``; these tests pin down that the
implementation is the tabular rule (so the failure is the optimiser's, not the loss's):

* a hand-computed 2-response value of the grouped loss;
* the trainer feeds ``P(y > pi_t)`` and ``P(y > pi_{t-1})`` of the right iterates, so that
  its exact step is ``rules.optimistic_step`` and, solved to a tolerance
  (``step_kl_tol``), the LM follows the tabular OMWU trajectory from the same start;
* ``step_kl_tol`` is off by default, applies to any algorithm with a closed-form step,
  and round-trips through a checkpoint.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from prefgym.agents.llm import MenuPolicy, SelfPlayTrainer  # noqa: E402
from prefgym.agents.llm.losses import generalized_ipo_loss  # noqa: E402
from prefgym.algorithms import SPECS  # noqa: E402
from prefgym.algorithms.rules import log_normalize, magnetic_step, optimistic_step  # noqa: E402
from prefgym.algorithms.spec import FixedInputs  # noqa: E402
from prefgym.games.matrix import planted_nash  # noqa: E402
from prefgym.judges import TableJudge  # noqa: E402

REPLIES = ["goodbye!", "hello there.", "I am fine."]
PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:"]
GAME = planted_nash(3, rank=1, seed=2)  # the llm-menu game


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _menu(tiny):
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    return MenuPolicy(LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model)), REPLIES)


def _judge():
    return TableJudge.from_preference(GAME.preference, REPLIES)


def test_grouped_two_response_value_by_hand():
    # pi_theta = (0.6, 0.4), base pi_t = (0.5, 0.5), P(y > pi_t) = (0.7, 0.3), P(y > pi_{t-1}) = (0.6, 0.4)
    eta = 2.0
    logp = torch.log(torch.tensor([[0.6, 0.4]], dtype=torch.float64))
    base = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    payoffs = {"current": torch.tensor([[0.7, 0.3]], dtype=torch.float64) - 0.5,
               "previous": torch.tensor([[0.6, 0.4]], dtype=torch.float64) - 0.5}
    target = SPECS["omwu"].step(FixedInputs(base, eta, payoffs), None)  # the OMWU trainer's target

    def omwu_loss(lp):
        return generalized_ipo_loss(lp, target, base_logp=torch.zeros_like(target))

    out = omwu_loss(logp)
    # target c = eta (2 g_t - g_{t-1}) = 2 (0.8, 0.2) = (1.6, 0.4);
    # h = (log(0.6/0.5) - 1.6, log(0.4/0.5) - 0.4);
    # mean over the 4 ordered pairs (2 zero diagonal terms) of (h_i - h_j)^2 = (h_0 - h_1)^2 / 2
    h0, h1 = math.log(1.2) - 1.6, math.log(0.8) - 0.4
    assert float(out.loss) == pytest.approx((h0 - h1) ** 2 / 2, rel=1e-12)
    # a sign flip of the optimistic correction (2 g_t + g_{t-1}) or a missing factor 2 would change it
    assert (h0 - h1) ** 2 / 2 == pytest.approx(0.5 * (math.log(1.5) - 1.2) ** 2, rel=1e-12)
    # zero exactly at the tabular rule pi_t exp(eta (2 g_t - g_{t-1})), normalised
    rule = torch.log_softmax(base + torch.tensor([[1.6, 0.4]], dtype=torch.float64), -1)
    at_rule = omwu_loss(rule)
    assert float(at_rule.loss) < 1e-28


class _Spy:
    """Wraps an algorithm's ``loss`` to record each iteration's batch (one entry per iteration)."""

    def __init__(self, trainer):
        self.batches: dict[int, object] = {}
        loss = trainer.algorithm.loss

        def spy(tr, batch, logp, iteration):
            self.batches.setdefault(iteration, batch)
            return loss(tr, batch, logp, iteration)

        trainer.algorithm.loss = spy


def test_trainer_feeds_the_previous_iterate_and_follows_tabular_omwu(tiny):
    eta, T = 4.0, 6  # llm-menu's pre-registered eta
    menu = _menu(tiny)
    tr = SelfPlayTrainer(menu, _judge(), PROMPTS, "omwu", eta=eta, learning_rate=1e-2, steps_per_iteration=4,
                         step_kl_tol=1e-9, max_steps_per_iteration=400, seed=0)
    spy = _Spy(tr)
    pis = [menu.probs(PROMPTS)]
    for _ in range(T):
        tr.learn(1)
        pis.append(menu.probs(PROMPTS))
    A = GAME.payoff
    logits, prev = np.log(pis[0]), pis[0] @ A.T  # tabular OMWU from the LM's start (g_{-1} = g_0)
    for t in range(T):
        b = spy.batches[t]
        # the batch holds P(y > pi_t) and P(y > pi_{t-1}) of the LM's own iterates (None at t = 0)
        assert np.allclose(b.win_rate.double().numpy() - 0.5, pis[t] @ A.T, atol=1e-6)
        prev_payoff = b.extra["payoffs"]["previous"].double().numpy()  # pi_0 = pi_1 at t = 0
        assert np.allclose(prev_payoff, pis[max(t - 1, 0)] @ A.T, atol=1e-6)
        # its exact step is the tabular rule from pi_t
        g_prev = pis[t] @ A.T if t == 0 else pis[t - 1] @ A.T
        rule = log_normalize(optimistic_step(np.log(pis[t]), pis[t] @ A.T, g_prev, eta))[0]
        assert np.allclose(log_normalize(tr.algorithm.exact_step(b).double().numpy())[0], rule, atol=1e-5)
        # solved to the tolerance, the LM's iterate follows the tabular OMWU trajectory
        logp, pi = log_normalize(logits)
        g = pi @ A.T
        logits, prev = optimistic_step(logp, g, prev, eta), g
        assert np.abs(pis[t + 1] - log_normalize(logits)[1]).max() < 2e-3, t
    m = tr.metrics
    assert (m["inner_steps"] < 400).any()  # else the next line would hold vacuously
    assert (m["step_kl"][m["inner_steps"] < 400] <= 1e-9).all()
    assert (m["inner_steps"] >= 4).all()


def test_step_kl_tol_is_off_by_default_and_validated(tiny):
    tr = SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", eta=1.0, steps_per_iteration=3, seed=0)
    calls = []
    loss = tr.algorithm.loss
    tr.algorithm.loss = lambda *a: calls.append(1) or loss(*a)
    tr.learn(2)
    assert len(calls) == 6 and "inner_steps" not in tr.metrics
    with pytest.raises(ValueError, match="enumerated menu"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", exact=False, step_kl_tol=1e-6)
    with pytest.raises(ValueError, match="max_steps_per_iteration"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", steps_per_iteration=4, step_kl_tol=1e-6,
                        max_steps_per_iteration=2)
    with pytest.raises(ValueError, match="max_steps_per_iteration"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", steps_per_iteration=4, step_kl_tol=1e-6,
                        max_steps_per_iteration=0)  # not the default cap in disguise
    with pytest.raises(ValueError, match="applies with step_kl_tol"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", max_steps_per_iteration=64)
    with pytest.raises(ValueError, match="step_kl_tol must be"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", step_kl_tol=-1e-6)


def test_step_kl_tol_applies_to_other_closed_form_steps_and_round_trips(tiny, tmp_path):
    # MPO (opponent = current iterate) has the closed-form step rules.magnetic_step
    menu = _menu(tiny)
    tr = SelfPlayTrainer(menu, _judge(), PROMPTS, "mpo", alpha=0.1, eta=1.0, refresh_every=5,
                         opponent="current", learning_rate=1e-2, steps_per_iteration=2, step_kl_tol=1e-8,
                         max_steps_per_iteration=2000, seed=0)
    p0 = menu.probs(PROMPTS)
    tr.learn(1)
    A = GAME.payoff
    step = magnetic_step(np.log(p0), p0 @ A.T, 1.0, 0.1, np.log(p0))
    assert np.abs(menu.probs(PROMPTS) - log_normalize(step)[1]).max() < 5e-4
    assert 2 < tr.metrics["inner_steps"][0] < 2000 and tr.metrics["step_kl"][0] <= 1e-8
    # DPO has no closed form: the fixed count
    dpo = SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "dpo", beta=0.1, steps_per_iteration=2,
                          step_kl_tol=1e-8, seed=0).learn(1)
    assert dpo.metrics["inner_steps"][0] == 2
    path = tr.save(tmp_path / "ck")
    back = SelfPlayTrainer.load(path, judge=_judge())
    assert back.step_kl_tol == 1e-8 and back.max_steps_per_iteration == 2000
