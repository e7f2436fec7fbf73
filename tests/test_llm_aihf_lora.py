"""AIHF-DPO / Self-Play AIHF on the self-play loop (004 Eqs. 10-11) and LoRA policies through ``peft``."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from prefgym.agents.llm import (  # noqa: E402
    ALGORITHMS,
    LLM_AGENTS,
    AIHFAlgorithm,
    AIHFDPOTrainer,
    MenuPolicy,
    SelfPlayTrainer,
)
from prefgym.agents.llm.losses import aihf_dpo_loss, self_play_aihf_loss  # noqa: E402
from prefgym.games.matrix import planted_nash  # noqa: E402
from prefgym.judges import FeatureRaterJudge, TableJudge  # noqa: E402

REPLIES = ["goodbye!", "hello there.", "I am fine."]
PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:", "User: name a fruit\nAssistant:"]
DEMOS = [(PROMPTS[0], " hello there."), (PROMPTS[1], " goodbye!"), (PROMPTS[2], " an apple.")]
PREFS = [(PROMPTS[0], " hi!", " no."), (PROMPTS[2], " a pear.", " a rock.")]
GAME = planted_nash(3, rank=1, seed=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _lm(tiny, reference=True, max_new_tokens=4):
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    ref = copy.deepcopy(model) if reference else None
    return LMPolicy(copy.deepcopy(model), tok, reference_model=ref, max_new_tokens=max_new_tokens)


def _menu(tiny):
    return MenuPolicy(_lm(tiny), REPLIES)


def _params(trainer):
    return [p.detach().clone() for p in trainer.lm.model.parameters()]


def _same_params(a, b):
    return all(torch.equal(x, y) for x, y in zip(_params(a), _params(b), strict=True))


def _rows(trainer):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in trainer.history]


def _demo_logp(lm, demos, reference=False):
    eos = [lm.eos_token_ids[0]]
    resp = [lm.tokenizer(a, add_special_tokens=False)["input_ids"] + eos for _, a in demos]
    with torch.no_grad():
        lps = lm.sequence_logprobs([p for p, _ in demos], resp, reference=reference)
    return torch.stack([x.sum() for x in lps])


# ------------------------------------------------------------------ AIHF
def test_aihf_is_registered_and_validates():
    assert ALGORITHMS["aihf_dpo"] is AIHFAlgorithm and LLM_AGENTS["aihf_dpo"] is AIHFDPOTrainer
    with pytest.raises(ValueError, match="variant"):
        AIHFAlgorithm(variant="spin")
    with pytest.raises(ValueError, match="needs demonstrations"):
        AIHFAlgorithm(variant="self_play")
    with pytest.raises(ValueError, match="pairs of strings"):
        AIHFAlgorithm(demonstrations=[("a", "b", "c")])
    with pytest.raises(ValueError, match="triples"):
        AIHFAlgorithm(preferences=[("a", "b")])
    algo = AIHFAlgorithm(demonstrations=[["p", "a"]], preferences=[["p", "c", "r"]])
    assert algo.demonstrations == [("p", "a")] and algo.preferences == [("p", "c", "r")]


def test_aihf_dpo_loss_is_eq10_on_the_logged_logprobs(tiny):
    beta, w1 = 0.5, 0.3
    trainer = AIHFDPOTrainer(_lm(tiny), FeatureRaterJudge.length_lover(), PROMPTS, demonstrations=DEMOS,
                             beta=beta, w1=w1, num_samples=3)
    batch = trainer.source.collect(PROMPTS, seed=0)
    trainer.algorithm.prepare(trainer, batch, 0)
    logp = trainer.source.logp(batch, requires_grad=True)
    out = trainer.algorithm.loss(trainer, batch, logp, 0)
    # hand computation: best / worst by win rate, pi^0 = pi_t (the logged old_logp)
    g, old = batch.win_rate, batch.old_logp
    rows = torch.arange(len(PROMPTS))
    best, worst = g.argmax(-1), g.argmin(-1)
    valid = g[rows, best] > g[rows, worst]
    assert valid.any()
    lp = logp.detach()
    h = (lp[rows, best] - old[rows, best]) - (lp[rows, worst] - old[rows, worst])
    dpo = -F.logsigmoid(beta * h)[valid].mean()
    demo = _demo_logp(trainer.lm, DEMOS)
    torch.testing.assert_close(batch.extra["aihf_ref_logp"], demo)  # logged pi^0 of the demonstrations
    expected = w1 * (-demo.mean()) + dpo  # 004 Eq. (10), negated
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    same = aihf_dpo_loss(demo, lp[rows, best], lp[rows, worst], old[rows, best], old[rows, worst], beta=beta,
                         w1=w1, pref_weights=valid.float())
    assert float(out.loss.detach()) == pytest.approx(float(same.loss), rel=1e-6)
    out.loss.backward()  # the graph reaches the policy
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.params)


def test_self_play_aihf_loss_is_eq11_with_a_fixed_preference_set(tiny):
    beta, w1 = 0.2, 2.0
    trainer = AIHFDPOTrainer(_lm(tiny), FeatureRaterJudge.length_lover(), PROMPTS, demonstrations=DEMOS,
                             preferences=PREFS, variant="self_play", beta=beta, w1=w1, num_samples=2,
                             reference="initial")
    batch = trainer.source.collect(PROMPTS, seed=0)
    trainer.algorithm.prepare(trainer, batch, 0)
    e = batch.extra
    assert e["aihf_sizes"] == {"demo": 3, "sample": 3, "chosen": 2, "rejected": 2}
    logp = trainer.source.logp(batch, requires_grad=True)
    out = trainer.algorithm.loss(trainer, batch, logp, 0)
    lm = trainer.lm
    with torch.no_grad():
        cur = torch.stack([x.sum() for x in lm.sequence_logprobs(e["aihf_prompts"], e["aihf_responses"])])
        ref = torch.stack([x.sum() for x in lm.sequence_logprobs(e["aihf_prompts"], e["aihf_responses"],
                                                                 reference=True)])
    torch.testing.assert_close(e["aihf_ref_logp"], ref)
    d, s, c, r = cur.split([3, 3, 2, 2])
    rd, rs, rc, rr = ref.split([3, 3, 2, 2])
    spin = -F.logsigmoid(beta * ((d - rd) - (s - rs))).mean()
    dpo = -F.logsigmoid(beta * ((c - rc) - (r - rr))).mean()
    assert float(out.loss.detach()) == pytest.approx(float(w1 * spin + dpo), rel=1e-5)
    same = self_play_aihf_loss(d, s, rd, rs, c, r, rc, rr, beta=beta, w1=w1)
    assert float(out.loss.detach()) == pytest.approx(float(same.loss), rel=1e-6)
    # the rejected side of the demonstration term is a sample of pi_t at the demonstration prompt
    assert all(len(x) >= 1 for x in e["aihf_responses"][3:6])


@pytest.mark.parametrize("variant", ["dpo", "self_play"])
def test_training_on_demonstrations_raises_their_likelihood(tiny, variant):
    trainer = AIHFDPOTrainer(_lm(tiny), FeatureRaterJudge.length_lover(), PROMPTS, demonstrations=DEMOS,
                             preferences=[], variant=variant, w1=1.0, beta=0.5, num_samples=2,
                             steps_per_iteration=5, learning_rate=3e-3, max_grad_norm=None)
    before = _demo_logp(trainer.lm, DEMOS) - _demo_logp(trainer.lm, DEMOS, reference=True)
    assert torch.allclose(before, torch.zeros(3))
    trainer.learn(2)
    after = _demo_logp(trainer.lm, DEMOS) - _demo_logp(trainer.lm, DEMOS, reference=True)
    assert (after > 0.5).all(), after  # log pi(a^E|s^E) - log pi_ref(a^E|s^E)
    assert np.isfinite(trainer.history[-1]["loss"]) and trainer.history[-1]["demo_logp_gain"] > 0


def test_aihf_on_a_menu_policy_trains(tiny):
    judge = TableJudge.from_preference(GAME.preference, REPLIES)
    trainer = SelfPlayTrainer(_menu(tiny), judge, PROMPTS, "aihf_dpo", demonstrations=DEMOS[:2],
                              variant="self_play", demos_per_iteration=1, steps_per_iteration=2)
    trainer.learn(2)
    assert trainer.history[-1]["pairs"] > 0 and np.isfinite(trainer.history[-1]["spin"])


@pytest.mark.parametrize("policy, kw", [
    ("lm", {"variant": "self_play", "num_samples": 3, "prompts_per_iteration": 2, "demos_per_iteration": 2}),
    ("menu", {"variant": "dpo", "preferences": PREFS, "pairs_per_iteration": 1, "reference": "initial"}),
])
def test_aihf_resume_after_two_iterations_equals_three_uninterrupted(tiny, tmp_path, policy, kw):
    table = TableJudge.from_preference(GAME.preference, REPLIES)
    judge = FeatureRaterJudge.length_lover() if policy == "lm" else table
    make = (lambda: _lm(tiny)) if policy == "lm" else (lambda: _menu(tiny))
    common = {"steps_per_iteration": 2, "learning_rate": 1e-3, "seed": 7, "demonstrations": DEMOS, "w1": 0.5,
              **kw}
    full = AIHFDPOTrainer(make(), judge, PROMPTS, **common).learn(3)
    run = tmp_path / "run"
    AIHFDPOTrainer(make(), judge, PROMPTS, output_dir=run, **common).learn(2)
    resumed = AIHFDPOTrainer(make(), judge, PROMPTS, output_dir=run, resume_from=run, **common)
    assert resumed.num_iterations == 2
    resumed.learn(1)
    assert _same_params(full, resumed) and _rows(full) == _rows(resumed)
    loaded = SelfPlayTrainer.load(run, judge=judge)  # demonstrations round-trip through trainer.json
    assert type(loaded) is AIHFDPOTrainer and loaded.algorithm.hparams() == full.algorithm.hparams()


# ------------------------------------------------------------------ LoRA
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["c_attn"], "fan_in_fan_out": True}


def test_lora_trains_only_the_adapters(tiny):
    pytest.importorskip("peft")
    trainer = SelfPlayTrainer(_lm(tiny), FeatureRaterJudge.length_lover(), PROMPTS, "dpo", num_samples=3,
                              steps_per_iteration=2, learning_rate=1e-2, lora=LORA)
    names = {n for n, p in trainer.lm.model.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    assert len(trainer.params) == len(names)
    frozen = {n: p.detach().clone() for n, p in trainer.lm.model.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in trainer.lm.model.named_parameters() if p.requires_grad}
    trainer.learn(2)
    now = dict(trainer.lm.model.named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items())
    assert any(not torch.equal(now[n], v) for n, v in adapters.items())
    assert isinstance(trainer.predict(PROMPTS[0], deterministic=True)[0], str)


def test_lora_resume_is_bit_identical_and_checkpoints_hold_adapters(tiny, tmp_path):
    pytest.importorskip("peft")
    judge = FeatureRaterJudge.length_lover()
    common = {"num_samples": 3, "steps_per_iteration": 2, "learning_rate": 1e-2, "seed": 5, "lora": LORA}
    full = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "omwu", **common).learn(3)
    run = tmp_path / "run"
    SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "omwu", output_dir=run, **common).learn(2)
    ckpt = run / "checkpoint-000002"
    assert (ckpt / "policy" / "adapter_config.json").exists()
    assert not list((ckpt / "policy").glob("model*.safetensors"))
    assert (ckpt / "snapshots" / "previous" / "adapter_config.json").exists()
    resumed = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "omwu", output_dir=run, resume_from=run, **common)
    assert resumed.num_iterations == 2
    resumed.learn(1)
    assert _same_params(full, resumed) and _rows(full) == _rows(resumed)
    with pytest.raises(ValueError, match="LoRA adapters"):
        SelfPlayTrainer.load(run, judge=judge)
    loaded = SelfPlayTrainer.load(run, judge=judge, policy=_lm(tiny), output_dir=None)
    assert loaded.lora == LORA and _same_params(resumed, loaded)
