"""Sampling utilities: K replies per prompt, win-rate matrices, best/worst picks, one judge call per batch."""

from __future__ import annotations

import numpy as np
import pytest

from prefgym.judges.base import JudgeOutputError, PairwiseJudge
from prefgym.llm.sampling import (
    average_win_rates,
    best_and_worst,
    best_and_worst_batch,
    load_prompts,
    sample_k,
    win_rate_matrices,
    win_rate_matrix,
)


class LengthJudge(PairwiseJudge):
    """The longer reply wins: ``P(a > b) = 1/2 + 0.1 * clip(len(a) - len(b), -5, 5)``. Counts its calls."""

    def __init__(self):
        self.calls = 0
        self.pairs = 0

    def _prob(self, contexts, responses_a, responses_b):
        self.calls += 1
        self.pairs += len(responses_a)
        d = np.array([len(a) - len(b) for a, b in zip(responses_a, responses_b, strict=True)], dtype=float)
        return 0.5 + 0.1 * np.clip(d, -5, 5)


class NaNJudge(PairwiseJudge):
    """Broken: NaN for any pair that involves the reply ``"bad"``."""

    def _prob(self, contexts, responses_a, responses_b):
        pairs = zip(responses_a, responses_b, strict=True)
        return np.array([np.nan if "bad" in (a, b) else 0.5 for a, b in pairs])


class Scripted:
    """A TextGenerator: ``prompt + '#' + a random digit`` from the rng it is given."""

    def __init__(self):
        self.calls = 0

    def generate_text(self, prompts, rng=None):
        self.calls += 1
        rng = rng if rng is not None else np.random.default_rng()
        return [f"{p}#{int(rng.integers(10))}" for p in prompts]


# ------------------------------------------------------------ win rates
def test_win_rate_matrix_exact_values_one_call():
    judge = LengthJudge()
    W = win_rate_matrix(judge, "ctx", ["a", "aaa", "aa"])
    expected = np.array([[0.5, 0.3, 0.4], [0.7, 0.5, 0.6], [0.6, 0.4, 0.5]])
    np.testing.assert_allclose(W, expected, atol=1e-12)
    assert judge.calls == 1 and judge.pairs == 3


def test_average_win_rates_excludes_self():
    W = np.array([[0.5, 0.3, 0.4], [0.7, 0.5, 0.6], [0.6, 0.4, 0.5]])
    np.testing.assert_allclose(average_win_rates(W), [0.35, 0.65, 0.5], atol=1e-12)
    np.testing.assert_allclose(average_win_rates(W), (W.sum(1) - 0.5) / 2, atol=1e-12)
    batch = np.stack([W, W.T])
    np.testing.assert_allclose(average_win_rates(batch)[1], (W.T.sum(1) - 0.5) / 2, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        average_win_rates(np.full((1, 1), 0.5))
    with pytest.raises(ValueError, match="square"):
        average_win_rates(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        average_win_rates(np.array([[0.5, np.nan], [0.5, 0.5]]))


def test_best_and_worst_exact():
    best, worst, avg = best_and_worst(LengthJudge(), "ctx", ["a", "aaa", "aa"])
    assert (best, worst) == (1, 0)
    np.testing.assert_allclose(avg, [0.35, 0.65, 0.5], atol=1e-12)
    b, w, avg = best_and_worst(LengthJudge(), "ctx", ["same", "same", "same"])
    assert b == w == 0 and np.allclose(avg, 0.5)  # ties go to the lowest index
    with pytest.raises(ValueError, match="at least 2"):
        best_and_worst(LengthJudge(), "ctx", ["only"])


def test_batched_forms_make_one_judge_call_and_match_the_loop():
    contexts = ["c0", "c1", "c2"]
    groups = [["a", "aaa", "aa"], ["xxxxxx", "x", "xxx", "xx"], ["p", "pp"]]
    judge = LengthJudge()
    Ws = win_rate_matrices(judge, contexts, groups)
    assert judge.calls == 1 and judge.pairs == 3 + 6 + 1
    for c, g, W in zip(contexts, groups, Ws, strict=True):
        np.testing.assert_allclose(W, win_rate_matrix(LengthJudge(), c, g), atol=1e-12)
        np.testing.assert_allclose(W + W.T, 1.0, atol=1e-12)
    judge = LengthJudge()
    best, worst, avgs = best_and_worst_batch(judge, contexts, groups)
    assert judge.calls == 1
    assert best.tolist() == [1, 0, 1] and worst.tolist() == [0, 1, 0]
    for c, g, b, w, a in zip(contexts, groups, best, worst, avgs, strict=True):
        b1, w1, a1 = best_and_worst(LengthJudge(), c, g)
        assert (b, w) == (b1, w1)
        np.testing.assert_allclose(a, a1, atol=1e-12)
    np.testing.assert_allclose(avgs[2], [0.4, 0.6], atol=1e-12)


def test_judge_returning_nan_raises_through_every_utility():
    replies = ["good", "bad", "ok"]
    with pytest.raises(JudgeOutputError, match=r"returned P = .*nan.* for pair"):
        win_rate_matrix(NaNJudge(), "ctx", replies)
    with pytest.raises(JudgeOutputError, match=r"returned P = .*nan.* for pair"):
        best_and_worst(NaNJudge(), "ctx", replies)
    with pytest.raises(JudgeOutputError, match=r"returned P = .*nan.* for pair"):
        win_rate_matrices(NaNJudge(), ["c0", "c1"], [["good", "ok"], replies])
    with pytest.raises(JudgeOutputError, match=r"returned P = .*nan.* for pair"):
        best_and_worst_batch(NaNJudge(), ["c0", "c1"], [["good", "ok"], replies])
    best_and_worst(NaNJudge(), "ctx", ["good", "ok"])  # fine without the bad reply


def test_bad_arguments():
    with pytest.raises(TypeError, match="PairwiseJudge"):
        win_rate_matrix(lambda c, a, b: 0.5, "ctx", ["a", "b"])
    with pytest.raises(ValueError, match="2 contexts but 1 response groups"):
        win_rate_matrices(LengthJudge(), ["c0", "c1"], [["a", "b"]])
    with pytest.raises(TypeError, match="single string"):
        win_rate_matrix(LengthJudge(), "ctx", "ab")
    with pytest.raises(ValueError, match=r"responses\[1\]"):
        best_and_worst_batch(LengthJudge(), ["c0", "c1"], [["a", "b"], ["c"]])


# -------------------------------------------------------------- sampling
def test_sample_k_with_a_text_generator():
    gen = Scripted()
    out = sample_k(gen, ["p", "q"], k=3, seed=0)
    assert gen.calls == 3 and len(out) == 2 and all(len(r) == 3 for r in out)
    assert all(r.startswith("p#") for r in out[0]) and all(r.startswith("q#") for r in out[1])
    assert sample_k(Scripted(), ["p", "q"], k=3, seed=0) == out
    rng = np.random.default_rng(0)
    draws = [int(rng.integers(10)) for _ in range(6)]  # order: sample j of prompt i is draw 2 j + i
    assert out[1][2] == f"q#{draws[5]}" and out[0][1] == f"p#{draws[2]}"


def test_sample_k_errors():
    with pytest.raises(ValueError, match="empty"):
        sample_k(Scripted(), [], k=2)
    with pytest.raises(ValueError, match="positive integer"):
        sample_k(Scripted(), ["p"], k=0)
    with pytest.raises(TypeError, match="TextGenerator"):
        sample_k(object(), ["p"], k=2)

    class Short:
        def generate_text(self, prompts, rng=None):
            return ["x"]

    with pytest.raises(ValueError, match="returned 1 replies for 2 prompts"):
        sample_k(Short(), ["p", "q"], k=2)


def test_sample_k_with_an_lm_policy_is_one_batched_call():
    pytest.importorskip("transformers")
    from prefgym.llm.policy import LMPolicy
    from prefgym.llm.tiny import tiny_lm

    model, tok = tiny_lm("gpt2", n_layer=1, n_embd=32, n_head=2, n_positions=64)
    policy = LMPolicy(model, tok, max_new_tokens=4)
    calls = []
    original = policy.generate

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    policy.generate = counting
    prompts = ["User: hi\nAssistant:", "User: what is 1+1?\nAssistant:"]
    out = sample_k(policy, prompts, k=3, seed=5)
    assert len(calls) == 1 and calls[0]["num_return_sequences"] == 3
    ref = original(prompts, num_return_sequences=3, seed=5).texts
    assert out == [ref[:3], ref[3:]]
    best, worst, avgs = best_and_worst_batch(LengthJudge(), prompts, out)
    for i in range(2):
        lengths = [len(r) for r in out[i]]
        assert lengths[best[i]] == max(lengths) and lengths[worst[i]] == min(lengths)


# --------------------------------------------------------------- prompts
def test_load_prompts(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("User: hi\\nAssistant:\n\n  \nsecond\n")
    assert load_prompts(txt) == ["User: hi\nAssistant:", "second"]
    jl = tmp_path / "p.jsonl"
    jl.write_text('"plain"\n{"prompt": "User: a\\nAssistant:"}\n')
    assert load_prompts(jl) == ["plain", "User: a\nAssistant:"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        load_prompts(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt key"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_prompts(bad)
