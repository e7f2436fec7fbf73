"""The phase timer of the self-play trainer and the ``--quick`` path of benchmarks/lm_selfplay_vs_trl.py."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

from prefgym.agents.llm.timing import PhaseTimes, phase  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_phase_times_are_exclusive_and_partition_the_time():
    times = PhaseTimes()
    start = time.perf_counter()
    with times.phase("outer"):
        time.sleep(0.02)
        with times.phase("inner"):
            time.sleep(0.03)
        with phase(times, "inner"):
            time.sleep(0.01)
    total = time.perf_counter() - start
    assert times.wall["inner"] >= 0.04
    assert times.wall["outer"] >= 0.02
    assert times.wall["outer"] + times.wall["inner"] <= total
    assert times.wall["outer"] + times.wall["inner"] == pytest.approx(total, abs=5e-3)
    assert list(times.as_dict()["cpu"]) == ["outer", "inner"]
    with phase(None, "ignored"):  # no timer: a no-op
        pass


def test_quick_benchmark_splits_every_iteration_into_phases():
    path = ROOT / "benchmarks" / "lm_selfplay_vs_trl.py"
    spec = importlib.util.spec_from_file_location("lm_selfplay_vs_trl", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.main(["--quick", "--no-memory", "--threads", "1"])
    ours = res["ab"]
    assert len(ours["ours"]) == len(ours["ours_phases"]) == 2  # warm-up + 1 timed repetition
    for (wall, _), ph in zip(ours["ours"], ours["ours_phases"], strict=True):
        for name in ("generation", "judging", "logprobs", "forward", "backward", "optimizer", "other"):
            assert ph["wall"][name] >= 0.0 and ph["cpu"][name] >= 0.0
        assert ph["wall"]["generation"] > 0 and ph["wall"]["backward"] > 0
        assert sum(ph["wall"].values()) <= wall  # phases lie inside the timed learn(1)
    # the second OMPO iteration also samples the previous iterate: two generate calls
    assert ours["ours_phases"][1]["wall"]["generation"] > 0
    s = res["sampling"]
    assert len(s["batched"]) == len(s["pipeline"]) == 1
    assert 0 < s["tokens_batched"][0] <= 2 * 4 * 4  # B=2 prompts x K=4 replies x <= 4 tokens


def test_lora_snapshot_shares_the_frozen_base_weights():
    from prefgym.agents.llm import OMPOTrainer
    from prefgym.judges import FeatureRaterJudge
    from prefgym.llm.policy import LMPolicy
    from prefgym.llm.tiny import tiny_lm

    net, tok = tiny_lm(n_layer=1, n_embd=32, n_head=2, seed=0)
    lm = LMPolicy(net, tok, max_new_tokens=3)
    trainer = OMPOTrainer(lm, FeatureRaterJudge.length_lover(), ["a b", "c d"], num_samples=2,
                          steps_per_iteration=1, learning_rate=1e-2, seed=0,
                          lora={"r": 2, "lora_alpha": 4, "target_modules": ["c_attn"]})
    snap = dict(trainer.snapshot("previous").model.named_parameters())
    live = dict(trainer.lm.model.named_parameters())
    assert set(snap) == set(live)
    for n, p in live.items():
        if "lora_" in n:  # adapters: own copies, frozen in the snapshot
            assert snap[n] is not p and not snap[n].requires_grad
        else:  # base weights: the very same tensors
            assert snap[n] is p
    trainer.learn(2)  # iteration 2 reads P(y > pi_1) from the snapshot
    adapters = [n for n in live if "lora_" in n]
    before = {n: live[n].detach().clone() for n in adapters}
    trainer.refresh_snapshot("previous")
    assert all(torch_equal(snap[n], before[n]) for n in adapters)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
