"""DPO and IPO teacher-force only their chosen and rejected replies: same loss and gradients, fewer passes."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from prefgym.agents.llm import SelfPlayTrainer  # noqa: E402
from prefgym.agents.llm.algorithms import ALGORITHMS  # noqa: E402
from prefgym.judges import FeatureRaterJudge  # noqa: E402

PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:", "User: name a fruit\nAssistant:"]
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _trainer(tiny, name, score_all: bool):
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    lm = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model), max_new_tokens=6)
    trainer = SelfPlayTrainer(lm, FeatureRaterJudge.length_lover(), PROMPTS, name, num_samples=4,
                              steps_per_iteration=3, learning_rate=1e-1, optimizer="sgd", seed=3)
    if score_all:  # the behaviour before: every one of the B x K replies scored at every step
        trainer.algorithm.scored_responses = lambda batch: None
    return trainer


@pytest.mark.parametrize("name", ["dpo", "ipo"])
def test_best_worst_losses_score_only_their_pair_with_identical_results(tiny, name):
    masked, full = _trainer(tiny, name, False), _trainer(tiny, name, True)
    masked.learn(2)
    full.learn(2)
    for a, b in zip(masked.history, full.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    for p, q in zip(masked.lm.model.parameters(), full.lm.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # SGD (Adam would turn round-off in near-zero gradients into full-size steps)
    # B x K = 3 x 4 = 12 replies per step before; at most the 2 of each untied group now
    assert full.scored_sequences == 2 * 3 * 12
    assert 0 < masked.scored_sequences <= 2 * 3 * 2 * 3 < full.scored_sequences


def test_one_step_gradients_match_and_unscored_entries_are_constants(tiny):
    masked, full = _trainer(tiny, "dpo", False), _trainer(tiny, "dpo", True)
    batches = []
    for trainer in (masked, full):
        batch = trainer.source.collect(PROMPTS, seed=11)
        trainer.algorithm.prepare(trainer, batch, 0)
        mask = trainer.algorithm.scored_responses(batch)
        trainer.optimizer.zero_grad(set_to_none=True)
        logp = trainer.source.logp(batch, requires_grad=True, mask=mask)
        trainer.algorithm.loss(trainer, batch, logp, 0).loss.backward()
        batches.append((batch, mask, logp))
    (batch, mask, logp), (_, none, logp_all) = batches
    assert none is None and mask.shape == (3, 4) and int(mask.sum()) <= 6
    rows = torch.arange(3)
    valid = batch.extra["pair_valid"] > 0
    assert torch.equal(mask[rows, batch.extra["best"]], valid | (~valid.any()) & (rows == 0))
    torch.testing.assert_close(logp[mask], logp_all[mask].detach(), rtol=0, atol=1e-6)
    assert torch.equal(logp[~mask].detach(), batch.old_logp[~mask].to(logp.dtype))
    for p, q in zip(masked.lm.model.parameters(), full.lm.model.parameters(), strict=True):
        if p.grad is None:
            assert q.grad is None or torch.count_nonzero(q.grad) == 0
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-6)


def test_other_algorithms_read_every_reply():
    for name, cls in ALGORITHMS.items():
        if name not in ("dpo", "ipo", "slic_hf"):
            assert cls.scored_responses is ALGORITHMS["omwu"].scored_responses or name == "aihf_dpo"


def test_slic_hf_scores_the_pairs_unless_its_regulariser_reads_the_group():
    batch = SimpleNamespace(extra={"pair_valid": torch.tensor([1.0, 0.0]), "best": torch.tensor([0, 1]),
                                   "worst": torch.tensor([2, 0])}, shape=(2, 3))
    mask = ALGORITHMS["slic_hf"]().scored_responses(batch)
    assert mask.tolist() == [[True, False, True], [False, False, False]]
    assert ALGORITHMS["slic_hf"](lam=0.5).scored_responses(batch) is None
