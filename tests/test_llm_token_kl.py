"""Token-level (sequential) KL in the LM trainers: 000 Sec. 3.3 (MPO's two KLs) and 003 App. D (SPO's KL).

``LMPolicy.sequential_kl`` against a slow token-by-token reference (values, gradients,
padding), the ``kl_estimator="token"`` option of MPO and SPO in the self-play trainer
(logged values, one fused policy pass per step, exact resume), and a behavioural check:
a large KL coefficient keeps the policy closer to its reference.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from prefgym.agents.llm import MenuPolicy, SelfPlayTrainer  # noqa: E402
from prefgym.agents.llm.algorithms import MPOAlgorithm, SPOAlgorithm  # noqa: E402
from prefgym.agents.llm.losses import sequence_kl  # noqa: E402
from prefgym.judges import FeatureRaterJudge  # noqa: E402

PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:", "User: name a fruit\nAssistant:"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _lm(tiny, max_new_tokens=4):
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    return LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model),
                    max_new_tokens=max_new_tokens)


def _perturbed(model, scale=0.05, seed=1):
    other = copy.deepcopy(model).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return other


def _ragged_pairs(lm):
    """Prompts of different lengths (left padding) and ragged responses: EOS-ended, empty, one token."""
    p_ids = lm._encode(PROMPTS + PROMPTS[:1], special=True)
    eos = lm.eos_token_ids[0]
    body = lm._encode(["hello there.", "an apple", "goodbye!"], special=False)
    r_ids = [torch.cat([body[0], torch.tensor([eos])]), body[1][:1], body[2],
             torch.zeros(0, dtype=torch.long)]
    assert len({len(r) for r in r_ids}) == 4 and len({len(p) for p in p_ids}) >= 2
    return p_ids, r_ids


def _slow_kl(model, other, p_ids, r_ids):
    """Per sequence, unpadded, token by token: sum_t sum_v pi(v|x,y<t) (log pi - log q)(v|x,y<t)."""
    out = []
    for p, r in zip(p_ids, r_ids, strict=True):
        ids = torch.cat([p, r])[None]
        z_pi, z_q = model(input_ids=ids).logits[0].float(), other(input_ids=ids).logits[0].float().detach()
        kl = torch.zeros(())
        for t in range(len(r)):
            a, b = z_pi[len(p) - 1 + t], z_q[len(p) - 1 + t]  # the state [x, y_<t]
            lp, lq = a - torch.logsumexp(a, 0), b - torch.logsumexp(b, 0)
            kl = kl + sum(lp[v].exp() * (lp[v] - lq[v]) for v in range(lp.shape[0]))  # explicit vocab sum
        out.append(kl)
    return torch.stack(out)


# ------------------------------------------------------------------ LMPolicy.sequential_kl
@pytest.mark.parametrize("batch_size", [None, 3])
def test_batched_sequential_kl_equals_slow_reference_with_padding(tiny, batch_size):
    lm = _lm(tiny)
    other = _perturbed(lm.model)
    p_ids, r_ids = _ragged_pairs(lm)
    kl, lps = lm.sequential_kl(p_ids, r_ids, other, batch_size=batch_size, return_logprobs=True)
    with torch.no_grad():
        slow = _slow_kl(lm.model, other, p_ids, r_ids)
    assert kl.shape == (4,) and kl.device.type == "cpu" and not kl.requires_grad
    torch.testing.assert_close(kl, slow, atol=1e-5, rtol=0)
    assert float(kl[3]) == 0.0 and (kl[:3] > 0).all()  # the empty response has no state
    # the log-probs of the same pass are those of sequence_logprobs, bit for bit
    ref_lps = lm.sequence_logprobs(p_ids, r_ids, batch_size=batch_size)
    assert all(torch.equal(a, b) for a, b in zip(lps, ref_lps, strict=True))
    # several frozen models in one pass: an (n, M) result; an LMPolicy view is accepted as well
    both = lm.sequential_kl(p_ids, r_ids, [other, lm.reference_model], batch_size=batch_size)
    assert both.shape == (4, 2)
    torch.testing.assert_close(both[:, 0], kl, atol=1e-6, rtol=0)


def test_sequential_kl_on_sampled_responses_and_gradient_equals_slow_reference(tiny):
    lm = _lm(tiny, max_new_tokens=6)
    other = _perturbed(lm.model, seed=2)
    gen = lm.generate(PROMPTS, num_return_sequences=2, seed=0, compute_ref=False)
    p_ids = gen.prompt_ids + _ragged_pairs(lm)[0]
    r_ids = gen.response_ids + _ragged_pairs(lm)[1]
    assert len({len(r) for r in gen.response_ids}) > 1  # ragged samples
    w = torch.linspace(0.5, 1.5, len(p_ids))
    params = [p for p in lm.model.parameters() if p.requires_grad]
    kl = lm.sequential_kl(p_ids, r_ids, other, requires_grad=True, batch_size=4)
    assert kl.requires_grad
    fast = torch.autograd.grad((w * kl).sum(), params)
    slow_kl = _slow_kl(lm.model, other, p_ids, r_ids)
    slow = torch.autograd.grad((w * slow_kl).sum(), params)
    torch.testing.assert_close(kl.detach(), slow_kl.detach(), atol=1e-5, rtol=0)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert any(float(g.abs().max()) > 1e-3 for g in fast)  # a real gradient was compared


def test_sequential_kl_is_zero_for_identical_models_and_positive_otherwise(tiny):
    lm = _lm(tiny)
    p_ids, r_ids = _ragged_pairs(lm)
    for same in (lm.reference_model, copy.deepcopy(lm.model), lm):
        kl = lm.sequential_kl(p_ids, r_ids, same)
        assert torch.all(kl.abs() < 1e-7), kl
    kl = lm.sequential_kl(p_ids, r_ids, _perturbed(lm.model, scale=0.01))
    assert torch.all(kl[:3] > 0) and float(kl[3]) == 0.0
    with pytest.raises(ValueError, match="at least one frozen model"):
        lm.sequential_kl(p_ids, r_ids, [])
    with pytest.raises(TypeError, match="LMPolicy or a causal LM module"):
        lm.sequential_kl(p_ids, r_ids, [lm.reference_model, None])
    with pytest.raises(ValueError, match="equal lengths"):
        lm.sequential_kl(p_ids, r_ids[:2], lm.reference_model)


# ------------------------------------------------------------------ the trainers
def _tok_kw(name):
    if name == "mpo":
        return {"kl_estimator": "token", "alpha": 0.5, "eta": 1.0, "refresh_every": 2, "baseline": "loo"}
    return {"kl_estimator": "token", "beta": 0.5, "labels": "bernoulli"}


@pytest.mark.parametrize("name", ["mpo", "spo"])
def test_token_kl_loss_is_the_sequential_kl_from_one_fused_policy_pass(tiny, name):
    judge = FeatureRaterJudge.length_lover()
    trainer = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, name, num_samples=3, **_tok_kw(name))
    if name == "mpo":
        assert trainer.algorithm.snapshots == ("magnet", "previous")
        with torch.no_grad():  # a magnet distinct from pi_t
            magnet = _perturbed(trainer.lm.model, seed=3)
            trainer.snapshot("magnet").model.load_state_dict(magnet.state_dict())
    batch = trainer.source.collect(PROMPTS, seed=0)
    trainer.algorithm.prepare(trainer, batch, 0)
    with torch.no_grad():  # theta != theta^k, as after a first optimiser step
        trainer.lm.model.load_state_dict(_perturbed(trainer.lm.model, scale=0.02, seed=4).state_dict())
    calls = []
    hook = trainer.lm.model.register_forward_hook(lambda *a: calls.append(1))
    logp = trainer.source.logp(batch, requires_grad=True)
    out = trainer.algorithm.loss(trainer, batch, logp, 0)
    hook.remove()
    assert len(calls) == 1  # the KLs came from the log-prob pass, not from a second one
    torch.testing.assert_close(logp.detach(), trainer.source.logp(batch), atol=0, rtol=0)
    rows_p = [batch.prompt_ids[b] for b in range(3) for _ in range(3)]
    rows_r = [r for g in batch.response_ids for r in g]
    frozen = ({"kl_magnet": trainer.snapshot("magnet"), "kl_old": trainer.snapshot("previous")}
              if name == "mpo" else {"kl_reference_token": trainer.lm.reference_model})
    for metric, q in frozen.items():
        expect = trainer.lm.sequential_kl(rows_p, rows_r, q).mean()
        assert float(expect) > 1e-4
        assert float(out.metrics[metric]) == pytest.approx(float(expect), rel=1e-5, abs=1e-7)
    # ... and not the sequence-level estimate
    assert name != "mpo" or "magnet_logp" not in batch.extra  # the token KL needs no magnet sequence pass
    ref = (trainer.source.logp(batch, policy=trainer.snapshot("magnet")) if name == "mpo"
           else batch.ref_logp)
    seq = float(sequence_kl(logp.detach(), ref).mean())
    key = "kl_magnet" if name == "mpo" else "kl_reference_token"
    assert abs(float(out.metrics[key]) - seq) > 1e-4
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in trainer.params if p.grad is not None)
    # without the fused pass (e.g. a logp computed elsewhere) the loss computes the KLs itself
    plain = trainer.source._sums(batch, trainer.lm, requires_grad=True)
    again = trainer.algorithm.loss(trainer, batch, plain, 0)
    assert float(again.metrics[key]) == pytest.approx(float(out.metrics[key]), rel=1e-5, abs=1e-7)
    # fused KLs of an earlier pass are not reused for another logp (here: after the weights changed)
    trainer.source.logp(batch, requires_grad=True)  # leaves its KLs in batch.extra
    with torch.no_grad():
        trainer.lm.model.load_state_dict(_perturbed(trainer.lm.model, scale=0.05, seed=5).state_dict())
    plain = trainer.source._sums(batch, trainer.lm, requires_grad=True)
    fresh = trainer.algorithm.loss(trainer, batch, plain, 0)
    expect = float(trainer.lm.sequential_kl(rows_p, rows_r, frozen[key]).mean())
    assert abs(expect - float(out.metrics[key])) > 1e-4
    assert float(fresh.metrics[key]) == pytest.approx(expect, rel=1e-5, abs=1e-7)


def _rows(trainer):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in trainer.history]


def _same_params(a, b):
    pairs = zip(a.lm.model.parameters(), b.lm.model.parameters(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.parametrize("name", ["mpo", "spo"])
def test_token_kl_runs_train_log_finite_kls_and_resume_exactly(tiny, tmp_path, name):
    judge = FeatureRaterJudge.length_lover()
    common = {"num_samples": 3, "steps_per_iteration": 2, "learning_rate": 1e-3, "seed": 7, **_tok_kw(name)}
    full = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, name, **common).learn(3)
    keys = ("kl_magnet", "kl_old") if name == "mpo" else ("kl_reference_token",)
    for row in full.history:
        assert all(np.isfinite(row[k]) and row[k] >= -1e-7 for k in keys) and np.isfinite(row["loss"])
    assert max(r[keys[0]] for r in full.history) > 0
    run = tmp_path / "run"
    SelfPlayTrainer(_lm(tiny), judge, PROMPTS, name, output_dir=run, **common).learn(2)
    if name == "mpo":
        assert (run / "checkpoint-000002" / "snapshots" / "previous").is_dir()
    resumed = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, name, output_dir=run, resume_from=run, **common)
    assert resumed.num_iterations == 2 and resumed.algorithm.kl_estimator == "token"
    resumed.learn(1)
    assert _same_params(full, resumed) and _rows(full) == _rows(resumed)
    loaded = SelfPlayTrainer.load(run, judge=judge)
    assert loaded.algorithm.hparams() == full.algorithm.hparams()


def test_token_kl_option_errors_and_default(tiny):
    assert MPOAlgorithm().kl_estimator == "sequence" and SPOAlgorithm().kl_estimator == "sequence"
    assert MPOAlgorithm().snapshots == ("magnet",)
    with pytest.raises(ValueError, match="kl_estimator"):
        MPOAlgorithm(kl_estimator="full")
    with pytest.raises(ValueError, match="kl_estimator"):
        SPOAlgorithm(kl_estimator="tokens")
    judge = FeatureRaterJudge.length_lover()
    for exact in (True, False):
        menu = MenuPolicy(_lm(tiny), ["goodbye!", "hello there.", "I am fine."])
        trainer = SelfPlayTrainer(menu, judge, PROMPTS, "mpo", exact=exact, kl_estimator="token",
                                  baseline="mean")
        with pytest.raises(ValueError, match="MenuPolicy"):
            trainer.learn(1)


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("name, coef", [("spo", "beta"), ("mpo", "alpha")])
def test_large_token_kl_coefficient_stays_closer_to_the_reference(tiny, name, coef):
    judge = FeatureRaterJudge.length_lover()
    kls = {}
    for value in (0.01, 3.0):
        kw = {"kl_estimator": "token", coef: value}
        if name == "mpo":  # the magnet stays the initial policy = the reference
            kw.update(eta=1.0, anneal=False, refresh_every=1000, baseline="loo")
        trainer = SelfPlayTrainer(_lm(tiny, max_new_tokens=6), judge, PROMPTS, name, num_samples=4,
                                  steps_per_iteration=4, learning_rate=1e-2, seed=0, **kw).learn(6)
        lm = trainer.lm
        gen = lm.generate(PROMPTS, num_return_sequences=8, seed=123, compute_ref=False)
        kls[value] = float(lm.sequential_kl(gen.prompt_ids, gen.response_ids, lm.reference_model).mean())
    assert kls[3.0] < 0.5 * kls[0.01], kls


def test_mpo_token_kl_without_kl_terms_is_plain_reinforce(tiny):
    """alpha = 0 and eta = inf: no frozen model is asked for, the loss is the policy-gradient term alone."""
    judge = FeatureRaterJudge.length_lover()
    trainer = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "mpo", num_samples=3, kl_estimator="token",
                              alpha=0.0, eta=float("inf"), anneal=False, baseline="loo",
                              steps_per_iteration=1).learn(1)
    row = trainer.history[-1]
    assert "kl_magnet" not in row and "kl_old" not in row and row["loss"] == pytest.approx(row["pg_loss"])


def test_resuming_a_sequence_kl_checkpoint_with_token_kl_names_the_missing_snapshot(tiny, tmp_path):
    judge = FeatureRaterJudge.length_lover()
    common = {"num_samples": 3, "steps_per_iteration": 1, "learning_rate": 1e-3, "seed": 7}
    run = tmp_path / "run"
    SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "mpo", output_dir=run, **common).learn(1)
    with pytest.raises(ValueError, match="no snapshot 'previous'"):
        SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "mpo", resume_from=run, kl_estimator="token", **common)
