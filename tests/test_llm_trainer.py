"""The self-play LM trainer: algorithms, menu policies, determinism, checkpoints and resuming."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from prefgym.agents import AGENTS  # noqa: E402
from prefgym.agents.callbacks import BaseCallback  # noqa: E402
from prefgym.agents.llm import (  # noqa: E402
    ALGORITHMS,
    LLM_AGENTS,
    MenuPolicy,
    MPOTrainer,
    OMWUTrainer,
    SelfPlayTrainer,
)
from prefgym.agents.llm.algorithms import MPOAlgorithm  # noqa: E402
from prefgym.algorithms.rules import magnetic_step  # noqa: E402
from prefgym.games.matrix import planted_nash  # noqa: E402
from prefgym.judges import FeatureRaterJudge, TableJudge  # noqa: E402
from prefgym.judges.base import PairwiseJudge  # noqa: E402

REPLIES = ["goodbye!", "hello there.", "I am fine."]
PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:", "User: name a fruit\nAssistant:"]
GAME = planted_nash(3, rank=1, seed=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _lm(tiny, reference=True, max_new_tokens=4):
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    ref = copy.deepcopy(model) if reference else None
    return LMPolicy(copy.deepcopy(model), tok, reference_model=ref, max_new_tokens=max_new_tokens)


def _menu(tiny, reference=True):
    return MenuPolicy(_lm(tiny, reference), REPLIES)


def _table_judge():
    return TableJudge.from_preference(GAME.preference, REPLIES)


def _params(trainer):
    return [p.detach().clone() for p in trainer.lm.model.parameters()]


def _same_params(a, b):
    return all(torch.equal(x, y) for x, y in zip(_params(a), _params(b), strict=True))


def _rows(trainer):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in trainer.history]


# ------------------------------------------------------------------ menu policy
def test_menu_policy_is_the_softmax_of_sequence_logprobs(tiny):
    menu = _menu(tiny)
    lm = menu.policy
    eos = lm.eos_token_ids[0]
    raw = menu.sequence_logprobs(PROMPTS)
    for b, p in enumerate(PROMPTS):
        for i, r in enumerate(REPLIES):
            ids = lm.tokenizer(r, add_special_tokens=False)["input_ids"] + [eos]
            direct = lm.sequence_logprobs([p], [ids])[0].sum()
            assert raw[b, i] == pytest.approx(float(direct), abs=1e-5)
    probs = menu.probs(PROMPTS)
    np.testing.assert_allclose(probs, torch.softmax(raw.double(), -1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    np.testing.assert_allclose(menu.probs(PROMPTS, reference=True), probs, rtol=1e-6)
    gen = torch.Generator().manual_seed(0)
    idx = menu.sample(PROMPTS, 5, generator=gen)
    assert idx.shape == (3, 5) and idx.max() < 3
    assert all(t in REPLIES for t in menu.generate_text(PROMPTS, rng=np.random.default_rng(0)))
    assert set(menu.distribution(PROMPTS[0])) == set(REPLIES)
    with pytest.raises(ValueError, match="distinct"):
        MenuPolicy(lm, ["a", "a"])
    with pytest.raises(ValueError, match="at least 2"):
        MenuPolicy(lm, ["a"])


# ------------------------------------------------------------------ registry and errors
def test_registry_is_separate_from_matrix_game_agents():
    assert set(LLM_AGENTS) == set(ALGORITHMS)
    assert not set(LLM_AGENTS.values()) & set(AGENTS.values())
    for name, cls in LLM_AGENTS.items():
        assert cls.algorithm_class.name == name and issubclass(cls, SelfPlayTrainer)


def test_construction_errors(tiny):
    judge = _table_judge()
    with pytest.raises(ValueError, match="unknown algorithm"):
        SelfPlayTrainer(_menu(tiny), judge, PROMPTS, "ppo")
    with pytest.raises(ValueError, match="reference"):
        SelfPlayTrainer(_menu(tiny, reference=False), judge, PROMPTS, "nash_md")
    with pytest.raises(ValueError, match="exact"):
        SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "omwu", exact=True)
    with pytest.raises(TypeError, match="fixes the algorithm"):
        OMWUTrainer(_menu(tiny), judge, PROMPTS, "mpo")
    with pytest.raises(TypeError, match="unknown arguments"):
        OMWUTrainer(_menu(tiny), judge, PROMPTS, alpha=0.1)
    with pytest.raises(ValueError, match="num_samples"):
        SelfPlayTrainer(_lm(tiny), judge, PROMPTS, "sppo", num_samples=1)
    with pytest.raises(ValueError, match="opponent"):
        MPOAlgorithm(opponent="self")


# ------------------------------------------------------------------ exact menu: the losses realise the rules
@pytest.mark.parametrize("name, kw", [
    ("omwu", {"eta": 1.0}),
    ("ompo", {"beta": 1.0}),
    ("sppo", {"eta": 1.0}),
    ("mpo", {"alpha": 0.2, "eta": 1.0, "opponent": "magnet"}),
    ("mpo", {"alpha": 0.2, "eta": 1.0, "opponent": "current"}),
    ("nash_md", {"eta": 1.0, "tau": 0.2}),
])
def test_many_optimiser_steps_reach_the_exact_tabular_step(tiny, name, kw):
    trainer = SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, name, learning_rate=3e-3,
                              steps_per_iteration=60, max_grad_norm=None, **kw)
    trainer.learn(2)
    kl = trainer.metrics["step_kl"]
    assert (kl < 2e-3).all(), kl  # KL(exact rule step || pi_{t+1}) after the inner optimisation


def test_exact_mpo_step_matches_the_closed_form(tiny):
    menu = _menu(tiny)
    trainer = MPOTrainer(menu, _table_judge(), PROMPTS, alpha=0.5, eta=1.0, anneal=False, opponent="magnet",
                         learning_rate=3e-3, steps_per_iteration=80, max_grad_norm=None)
    before = menu.log_probs(PROMPTS).double().numpy()
    trainer.learn(1)
    after = menu.probs(PROMPTS)
    g = np.einsum("ij,bj->bi", GAME.preference, np.exp(before))  # P(y > magnet), magnet = pi_0
    exact = np.exp(magnetic_step(before, g, 1.0, 0.5, before))
    exact /= exact.sum(-1, keepdims=True)
    np.testing.assert_allclose(after, exact, atol=5e-3)


def test_exact_batch_is_the_menu_game(tiny):
    menu = _menu(tiny)
    trainer = SelfPlayTrainer(menu, _table_judge(), PROMPTS, "sppo")
    batch = trainer.source.collect(PROMPTS, seed=0)
    pi = menu.probs(PROMPTS)
    assert batch.exact and batch.shape == (3, 3)
    np.testing.assert_allclose(batch.weights.numpy(), pi, rtol=1e-5)
    np.testing.assert_allclose(batch.win_rate.numpy(), pi @ GAME.preference.T, rtol=1e-5)
    np.testing.assert_allclose(batch.win_matrix[0].numpy(), GAME.preference, rtol=1e-6)


def test_dpo_takes_best_and_worst_and_spo_labels_are_complementary(tiny):
    menu = _menu(tiny)
    trainer = SelfPlayTrainer(menu, _table_judge(), PROMPTS, "dpo", beta=0.5)
    batch = trainer.source.collect(PROMPTS, seed=0)
    trainer.algorithm.prepare(trainer, batch, 0)
    g = batch.win_rate
    assert torch.equal(batch.extra["best"], g.argmax(-1)) and torch.equal(batch.extra["worst"], g.argmin(-1))
    tied = copy.copy(batch)
    tied.win_rate = torch.full_like(g, 0.5)
    tied.extra = {}
    trainer.algorithm.prepare(trainer, tied, 0)
    out = trainer.algorithm.loss(trainer, tied, trainer.source.logp(tied, requires_grad=True), 0)
    assert float(out.loss.detach()) == 0.0 and float(out.metrics["pairs"]) == 0.0
    spo = SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, "spo", exact=False, num_samples=4,
                          labels="bernoulli")
    b = spo.source.collect(PROMPTS, seed=1)
    spo.algorithm.prepare(spo, b, 0)
    w = b.extra["pair_weights"]
    off = ~torch.eye(4, dtype=torch.bool)
    assert set(w.unique().tolist()) <= {0.0, 1.0}
    assert torch.all((w + w.transpose(-1, -2))[:, off] == 1.0)


# ------------------------------------------------------------------ sampled LM mode
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_trains_on_sampled_responses(tiny, name):
    judge = FeatureRaterJudge.length_lover()
    kw = {"baseline": "remax"} if name == "mpo" else {}
    trainer = SelfPlayTrainer(_lm(tiny), judge, PROMPTS, name, num_samples=3, steps_per_iteration=2,
                              learning_rate=1e-3, prompts_per_iteration=2, **kw)
    before = _params(trainer)
    trainer.learn(2)
    assert trainer.num_iterations == 2 and len(trainer.history) == 2
    row = trainer.history[-1]
    assert np.isfinite(row["loss"]) and row["response_tokens"] > 0 and "kl_reference" in row
    assert not all(torch.equal(a, b) for a, b in zip(before, _params(trainer), strict=True))
    reply, _ = trainer.predict(PROMPTS[0], deterministic=True)
    assert isinstance(reply, str)


# ------------------------------------------------------------------ determinism, checkpoints, resuming
@pytest.mark.parametrize("name, policy, kw", [
    ("omwu", "lm", {"num_samples": 3, "prompts_per_iteration": 2}),
    ("spo", "lm", {"num_samples": 3, "labels": "bernoulli"}),
    ("mpo", "menu", {"refresh_every": 2, "exact": False, "num_samples": 3}),
    ("nash_md", "menu", {}),
])
def test_resume_after_two_iterations_equals_three_uninterrupted(tiny, tmp_path, name, policy, kw):
    judge = FeatureRaterJudge.length_lover() if policy == "lm" else _table_judge()
    make = (lambda: _lm(tiny)) if policy == "lm" else (lambda: _menu(tiny))
    common = {"steps_per_iteration": 2, "learning_rate": 1e-3, "seed": 7, **kw}
    full = SelfPlayTrainer(make(), judge, PROMPTS, name, **common).learn(3)
    run = tmp_path / "run"
    SelfPlayTrainer(make(), judge, PROMPTS, name, output_dir=run, **common).learn(2)
    resumed = SelfPlayTrainer(make(), judge, PROMPTS, name, output_dir=run, resume_from=run, **common)
    assert resumed.num_iterations == 2 and resumed.resumed_from.name == "checkpoint-000002"
    resumed.learn(1)
    assert _same_params(full, resumed)
    assert _rows(full) == _rows(resumed)
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("iteration,")
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-000003"]
    # a fresh uninterrupted run with the same seed is bit-identical too
    assert _same_params(full, SelfPlayTrainer(make(), judge, PROMPTS, name, **common).learn(3))


class _FailingJudge(PairwiseJudge):
    """Delegates to a judge, raising on call number ``fail_at`` (a run killed mid-iteration)."""

    def __init__(self, judge, fail_at):
        self.judge, self.calls, self.fail_at = judge, 0, fail_at

    def _prob(self, contexts, a, b):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed")
        return self.judge._prob(contexts, a, b)


def test_run_killed_mid_iteration_resumes_to_the_same_result(tiny, tmp_path):
    judge = FeatureRaterJudge.length_lover()
    common = {"num_samples": 3, "steps_per_iteration": 2, "learning_rate": 1e-3, "seed": 3}
    full = OMWUTrainer(_lm(tiny), judge, PROMPTS, **common).learn(4)
    run = tmp_path / "run"
    # OMWU calls the judge twice per iteration from the second on: call 6 is inside iteration 4
    killed = OMWUTrainer(_lm(tiny), _FailingJudge(judge, fail_at=6), PROMPTS, output_dir=run, **common)
    with pytest.raises(KeyboardInterrupt):
        killed.learn(4)
    resumed = OMWUTrainer(_lm(tiny), judge, PROMPTS, output_dir=run, resume_from=run, **common)
    assert resumed.num_iterations == 3
    resumed.learn(4 - resumed.num_iterations)
    assert _same_params(full, resumed) and _rows(full) == _rows(resumed)


def test_save_and_load_roundtrip(tiny, tmp_path):
    judge = _table_judge()
    trainer = MPOTrainer(_menu(tiny), judge, PROMPTS, alpha=0.1, refresh_every=2, learning_rate=1e-3,
                         steps_per_iteration=2).learn(3)
    path = trainer.save(tmp_path / "mpo")
    assert (path / "policy" / "config.json").exists() and (path / "snapshots" / "magnet").is_dir()
    loaded = SelfPlayTrainer.load(path, judge=judge)
    assert type(loaded) is MPOTrainer and loaded.num_iterations == 3 and isinstance(loaded.policy, MenuPolicy)
    assert loaded.algorithm.hparams() == trainer.algorithm.hparams() and _same_params(trainer, loaded)
    trainer.learn(1)
    loaded.learn(1)
    assert _same_params(trainer, loaded) and _rows(trainer) == _rows(loaded)
    with pytest.raises(ValueError, match="holds a MPOTrainer"):
        OMWUTrainer.load(path, judge=judge)
    with pytest.raises(ValueError, match="judge"):
        SelfPlayTrainer.load(path)


class _Stop(BaseCallback):
    def _on_step(self):
        return self.num_iterations < 2


def test_callbacks_progress_bar_evaluator_and_logs(tiny, tmp_path, capsys):
    from prefgym.evaluation import menu_evaluator

    menu = _menu(tiny)
    judge = _table_judge()
    ev = menu_evaluator(menu, judge, PROMPTS)
    trainer = SelfPlayTrainer(menu, judge, PROMPTS, "omwu", output_dir=tmp_path / "r", evaluator=ev,
                              eval_every=1, steps_per_iteration=1, save_every=None)
    trainer.learn(10, callback=_Stop(), progress_bar=True)
    assert trainer.num_iterations == 2 and "SelfPlayTrainer" in capsys.readouterr().err
    assert set(trainer.initial_metrics) >= {"gap_mean", "win_rate_vs_initial"}
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"iteration", "loss", "gap_mean", "step_kl", "entropy", "kl_reference", "time_s"} <= set(header)
    assert not list((tmp_path / "r").glob("checkpoint-*"))  # save_every=None
    assert set(trainer.evaluate()) == set(ev())


def test_tensorboard_flag(tiny, tmp_path):
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="tensorboard"):
            SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, "sppo", output_dir=tmp_path,
                            tensorboard=True, steps_per_iteration=1).learn(1)
    else:
        SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, "sppo", output_dir=tmp_path,
                        tensorboard=True, steps_per_iteration=1).learn(1)
        assert (tmp_path / "tensorboard").is_dir()


def test_single_process_accelerator_matches_the_plain_loop(tiny):
    pytest.importorskip("accelerate")
    from accelerate import Accelerator

    judge = _table_judge()
    plain = SelfPlayTrainer(_menu(tiny), judge, PROMPTS, "omwu", steps_per_iteration=2).learn(2)
    acc = SelfPlayTrainer(_menu(tiny), judge, PROMPTS, "omwu", steps_per_iteration=2,
                          accelerator=Accelerator(cpu=True)).learn(2)
    assert acc.world_size == 1 and _same_params(plain, acc) and _rows(plain) == _rows(acc)


def test_checkpoint_writes_the_last_iteration_once(tiny, tmp_path):
    run = tmp_path / "run"
    trainer = SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, "omwu", steps_per_iteration=1,
                              output_dir=run, save_every=2, keep_checkpoints=5)
    trainer.learn(3)
    assert (run / "latest").read_text().strip() == "checkpoint-000002"  # save_every skipped iteration 3
    folder = trainer.checkpoint()
    assert folder == run / "checkpoint-000003" and (run / "latest").read_text().strip() == folder.name
    stamp = (folder / "trainer_state.pt").stat().st_mtime_ns
    assert trainer.checkpoint() == folder and (folder / "trainer_state.pt").stat().st_mtime_ns == stamp
    assert (run / "trainer.json").exists()  # the run's hyper-parameters, beside the checkpoints
    resumed = SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, "omwu", steps_per_iteration=1,
                              resume_from=run)
    assert resumed.num_iterations == 3 and _same_params(trainer, resumed)
    with pytest.raises(ValueError, match="output_dir"):
        SelfPlayTrainer(_menu(tiny), _table_judge(), PROMPTS, "omwu").checkpoint()


def test_two_data_parallel_cpu_processes_end_with_the_single_process_weights(tmp_path):
    """``torchrun --nproc_per_node 2`` with ``accelerator=True`` (gloo on CPU) vs one process."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "llm_distributed_check.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(script), "--processes", "2", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["processes"] == 2 and result["ranks_identical"]
    assert result["max_abs_param_diff_vs_single"] < 1e-5  # float reduction order only (8e-7 measured)
