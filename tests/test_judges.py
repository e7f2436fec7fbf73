"""Judges: exact synthetic preferences, Bradley-Terry reward judges, the learned pairwise judge."""

import numpy as np
import pytest
import torch
from scipy.special import expit

from prefgym.games.matrix import MatrixGame, planted_nash
from prefgym.judges import (
    FEATURES,
    FeatureRaterJudge,
    JudgeOutputError,
    PairwiseJudge,
    PairwiseModelJudge,
    RewardModelJudge,
    TableJudge,
    build_word_tokenizer,
    exact_win_rate,
    sampled_win_rate,
    tiny_pairwise_judge,
    tiny_sequence_classifier,
    train_pairwise_judge,
)
from prefgym.preferences import BradleyTerry, Cyclic, PopulationMixture

WORDS = "the a cat dog sat ran on under mat log big small red blue and then it was very good".split()
CONTEXTS = ["tell me a story", "describe the cat", "what happened"]
REPLIES = ["yes", "no thanks", "please tell me 2 things?", "the cat sat on the mat", "why? why not? 42",
           "thank you very very much", ""]


def random_replies(rng, n, lo=1, hi=9):
    return [" ".join(rng.choice(WORDS, rng.integers(lo, hi))) for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(WORDS + CONTEXTS + REPLIES, model_max_length=48)


@pytest.fixture(scope="module")
def pairwise(tokenizer):
    return tiny_pairwise_judge(tokenizer=tokenizer, max_length=48, seed=0)


@pytest.fixture(scope="module")
def reward_model(tokenizer):
    return tiny_sequence_classifier(tokenizer, max_length=48, seed=1)


def mixed_population():
    rng = np.random.default_rng(3)
    weights, population = rng.normal(size=(4, 6)), [0.1, 0.2, 0.3, 0.4]
    return FeatureRaterJudge(list(FEATURES)[:6], weights, population, temperature=0.7)


# ----------------------------------------------------------------------------- synthetic judges
def test_builtin_features():
    f = {name: fn for name, fn in FEATURES.items()}
    assert f["length"]("", "one two three") == pytest.approx(0.3)
    assert f["distinct_words"]("", "a a B b c") == pytest.approx(0.3)
    assert f["diversity"]("", "a a b b") == 0.5 and f["diversity"]("", "") == 0.0
    assert f["politeness"]("", "Please, THANK you; thanks!") == 3.0
    assert f["questions"]("", "why? how??") == 3.0
    assert f["digits"]("", "it is 12 or 7. or x") == 2.0
    ctx = "What is 2+2? Reference: 4"
    assert f["answer_match"](ctx, "The answer is 4.") == 1.0
    assert f["answer_match"](ctx, "4 is wrong, it is 5") == 0.0
    assert f["answer_match"]("no reference", "4") == 0.0


def test_feature_rater_closed_form():
    judge = mixed_population()
    rng = np.random.default_rng(0)
    a, b = list(rng.choice(REPLIES, 20)), list(rng.choice(REPLIES, 20))
    F = lambda xs: np.array([[FEATURES[k]("c", x) for k in list(FEATURES)[:6]] for x in xs])  # noqa: E731
    want = expit((F(a) - F(b)) @ judge.rater_weights.T / 0.7) @ judge.population
    np.testing.assert_allclose(judge.prob("c", a, b), want, rtol=0, atol=1e-14)
    # a vector feature map and per-feature callables give the same judge
    vec = FeatureRaterJudge(lambda c, y: [FEATURES[k](c, y) for k in list(FEATURES)[:6]],
                            judge.rater_weights, judge.population, 0.7)
    np.testing.assert_array_equal(vec.prob("c", a, b), judge.prob("c", a, b))
    pm = judge.preference_model("c", REPLIES)
    np.testing.assert_allclose(pm.matrix(), judge.win_matrix("c", REPLIES), atol=1e-15)


def table_of(model, prefix="reply"):
    return TableJudge.from_preference(model, [f"{prefix} {i}" for i in range(model.n_items)])


@pytest.mark.parametrize("make", [
    mixed_population,
    FeatureRaterJudge.condorcet,
    FeatureRaterJudge.length_lover,
    lambda: RewardModelJudge(lambda c, y: 0.37 * np.array([len(x) for x in c]) - [len(z) for z in y],
                             temperature=3.0),
])
def test_constant_sum_to_1e12(make):
    judge = make()
    rng = np.random.default_rng(1)
    a, b = list(rng.choice(REPLIES, 50)), list(rng.choice(REPLIES, 50))
    ctx = list(rng.choice(CONTEXTS, 50))
    np.testing.assert_allclose(judge.prob(ctx, a, b) + judge.prob(ctx, b, a), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(judge.prob(ctx, a, a), 0.5, rtol=0, atol=1e-15)


def test_table_judge_constant_sum():
    judge = table_of(Cyclic(5, 0.6))
    i, j = np.meshgrid(range(5), range(5))
    a, b = [judge.replies[k] for k in i.ravel()], [judge.replies[k] for k in j.ravel()]
    np.testing.assert_allclose(judge.prob("c", a, b) + judge.prob("c", b, a), 1.0, rtol=0, atol=1e-12)


def test_condorcet_cycle_and_uniform_nash():
    T = 0.25
    judge = FeatureRaterJudge.condorcet(temperature=T)
    A, B, C = FeatureRaterJudge.CONDORCET_REPLIES
    np.testing.assert_array_equal(judge.features("any", [A, B, C]), [[2, 0, 1], [1, 2, 0], [0, 1, 2]])
    W = judge.win_matrix("any context", [A, B, C])
    p = (2 * expit(1 / T) + expit(-2 / T)) / 3
    assert p == pytest.approx(0.6548, abs=1e-4)
    np.testing.assert_allclose([W[0, 1], W[1, 2], W[2, 0]], p, atol=1e-15)  # A > B > C > A
    np.testing.assert_allclose(MatrixGame(W).nash_equilibrium(), np.full(3, 1 / 3), atol=1e-8)
    # each single rater is transitive
    for k in range(3):
        rater = FeatureRaterJudge(judge.feature_names, judge.rater_weights[k], temperature=T)
        Wk = rater.win_matrix("", [A, B, C])
        order = np.argsort(-Wk.sum(axis=1))
        assert all(Wk[order[i], order[j]] > 0.5 for i in range(3) for j in range(i + 1, 3))


@pytest.mark.parametrize("model", [
    PopulationMixture.condorcet(),
    Cyclic(5, 0.8),
    BradleyTerry([0.3, -1.0, 2.0, 0.0]),
    planted_nash(6, rank=1, seed=4).preference_model,
], ids=["condorcet", "cyclic5", "bt", "planted"])
def test_table_judge_is_the_matrix_game(model):
    P = model.matrix()
    replies = [f"answer number {i}" for i in range(P.shape[0])]
    judge = TableJudge.from_preference(model, replies)
    W = judge.win_matrix("whatever the context", replies)
    np.testing.assert_allclose(W, P, rtol=0, atol=1e-15)
    nash = MatrixGame(W).nash_equilibrium()
    assert MatrixGame(P).exploitability(nash) < 1e-8  # the text game's equilibrium solves the matrix game


def test_table_judge_forms_and_errors():
    rewards = {"good": 1.0, "ok": 0.0, "bad": -1.0}
    judge = TableJudge(rewards, temperature=0.5)
    np.testing.assert_allclose(judge.matrix(), BradleyTerry([1.0, 0.0, -1.0], 0.5).matrix())
    with pytest.raises(ValueError, match=r"reply 'great' \(position 1\) is not in this TableJudge"):
        judge.prob("c", ["good", "great"], ["ok", "bad"])
    stripped = TableJudge(rewards, normalize=str.strip)
    assert stripped.prob("c", [" good\n"], ["bad"])[0] == pytest.approx(expit(2.0))
    with pytest.raises(ValueError, match="appears more than once"):
        TableJudge(["x", "x"], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="2 replies but the preference is over 3 items"):
        TableJudge(["x", "y"], Cyclic(3))
    with pytest.raises(ValueError, match="needs a preference"):
        TableJudge(["x", "y"])
    with pytest.raises(ValueError, match=r"P\[0, 1\] \+ P\[1, 0\]"):
        TableJudge(["x", "y"], [[0.5, 0.9], [0.5, 0.5]])


# ----------------------------------------------------------------------------- win rates
@pytest.mark.parametrize("make", [FeatureRaterJudge.length_lover, FeatureRaterJudge.condorcet],
                         ids=["transitive", "condorcet"])
def test_exact_win_rate_matches_sampled_within_3_se(make):
    judge = make()
    ctx = "say something"
    replies = list(FeatureRaterJudge.CONDORCET_REPLIES) + ["ok", "sure thing, happy to help with that"]
    pi, rho = np.array([0.5, 0.1, 0.1, 0.2, 0.1]), np.array([0.05, 0.3, 0.4, 0.05, 0.2])
    exact = exact_win_rate(judge, ctx, (replies, pi), dict(zip(replies, rho, strict=True)))
    brute = sum(pi[i] * rho[j] * judge.prob(ctx, [replies[i]], [replies[j]])[0]
                for i in range(5) for j in range(5))
    assert exact == pytest.approx(brute, abs=1e-14)
    rng = np.random.default_rng(7)
    n = 20_000
    a, b = list(rng.choice(replies, n, p=pi)), list(rng.choice(replies, n, p=rho))
    est = sampled_win_rate(judge, ctx, a, b, rng)
    assert est.n == n and 0.002 < est.stderr < 0.005
    assert abs(est.mean - exact) < 3 * est.stderr, (est, exact)
    smooth = sampled_win_rate(judge, ctx, a, b, rng, bernoulli=False)
    assert smooth.stderr < est.stderr and abs(smooth.mean - exact) < 3 * smooth.stderr


def test_exact_win_rate_of_condorcet_nash_is_half():
    judge = FeatureRaterJudge.condorcet()
    R = FeatureRaterJudge.CONDORCET_REPLIES
    uniform = (R, np.full(3, 1 / 3))
    for k in range(3):
        assert exact_win_rate(judge, "c", uniform, {R[k]: 1.0}) == pytest.approx(0.5, abs=1e-12)
    assert exact_win_rate(judge, "c", {R[0]: 1.0}, {R[1]: 1.0}) > 0.5


def test_win_rate_input_errors():
    judge = FeatureRaterJudge.length_lover()
    with pytest.raises(ValueError, match="sum to 1"):
        exact_win_rate(judge, "c", {"a": 0.5, "b": 0.2}, {"a": 1.0})
    with pytest.raises(ValueError, match="2 replies but 3 probabilities"):
        exact_win_rate(judge, "c", (["a", "b"], [0.2, 0.3, 0.5]), {"a": 1.0})
    with pytest.raises(ValueError, match="reply 0 must be a string"):
        exact_win_rate(judge, "c", {3: 1.0}, {"a": 1.0})
    with pytest.raises(ValueError, match="equal, non-zero numbers"):
        sampled_win_rate(judge, "c", ["a"], ["a", "b"], np.random.default_rng(0))


# ----------------------------------------------------------------------------- output and input checks
class ConstJudge(PairwiseJudge):
    def __init__(self, value):
        self.value = value

    def _prob(self, contexts, a, b):
        return np.full(len(a), self.value)


@pytest.mark.parametrize("value", [np.nan, 1.5, -0.1, np.inf])
def test_bad_judge_outputs_raise(value):
    with pytest.raises(JudgeOutputError, match="returned P = "):
        ConstJudge(value).prob("c", ["a"], ["b"])
    with pytest.raises(JudgeOutputError):
        exact_win_rate(ConstJudge(value), "c", {"a": 1.0}, {"b": 1.0})


def test_nan_rewards_and_features_raise_not_half():
    nan_reward = RewardModelJudge(lambda c, y: np.where(np.array(y) == "bad", np.nan, 1.0))
    assert nan_reward.prob("c", ["x"], ["y"])[0] == 0.5
    with pytest.raises(JudgeOutputError, match="reward nan for reply 'bad'"):
        nan_reward.prob("c", ["x", "bad"], ["y", "bad"])
    with pytest.raises(JudgeOutputError, match=r"returned shape \(3,\) for 2 replies"):
        RewardModelJudge(lambda c, y: np.zeros(3)).prob("c", ["x"], ["y"])
    nan_feature = FeatureRaterJudge([lambda c, y: np.nan if y == "bad" else 1.0], [[1.0]])
    with pytest.raises(JudgeOutputError, match="features must be finite"):
        nan_feature.prob("c", ["ok"], ["bad"])


@pytest.mark.parametrize("judge", [
    FeatureRaterJudge.length_lover(),
    TableJudge({"a": 0.0, "b": 1.0}),
    RewardModelJudge(lambda c, y: np.zeros(len(y))),
], ids=["feature", "table", "rm"])
def test_bad_inputs_raise_value_error(judge):
    with pytest.raises(ValueError, match=r"responses_a\[1\] must be a string; got int"):
        judge.prob("c", ["a", 3], ["b", "a"])
    with pytest.raises(ValueError, match="equal lengths"):
        judge.prob("c", ["a", "b"], ["b"])
    with pytest.raises(ValueError, match="equal lengths"):
        judge.prob(["c"], ["a", "b"], ["b", "a"])


def test_constructor_validation():
    with pytest.raises(ValueError, match="unknown feature 'charm'"):
        FeatureRaterJudge(["charm"], [[1.0]])
    with pytest.raises(ValueError, match="2 features but rater_weights has d = 3"):
        FeatureRaterJudge(["length", "questions"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="summing to 1"):
        FeatureRaterJudge(["length"], np.ones((2, 1)), population=[0.7, 0.7])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        FeatureRaterJudge(["length"], [[1.0]], temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        RewardModelJudge(lambda c, y: np.zeros(len(y)), temperature=-1)
    with pytest.raises(ValueError, match="reward must be a callable"):
        RewardModelJudge(3.0)


# ----------------------------------------------------------------------------- reward-model judge
def test_reward_model_judge_is_bradley_terry(tokenizer, reward_model):
    judge = RewardModelJudge(reward_model, tokenizer, temperature=0.5)
    a, b = REPLIES[:4], REPLIES[2:6]
    r = judge.rewards("describe the cat", a + b)
    enc = tokenizer([f"describe the cat\n{y}" for y in a + b], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = reward_model(**enc).logits[:, 0].double().numpy()
    np.testing.assert_allclose(r, want, atol=1e-5)
    np.testing.assert_allclose(judge.prob("describe the cat", a, b), expit((r[:4] - r[4:]) / 0.5), atol=1e-12)
    np.testing.assert_allclose(judge.prob("c", a, b) + judge.prob("c", b, a), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="num_labels=1"):
        RewardModelJudge(_two_label(tokenizer), tokenizer)


def _two_label(tokenizer):
    from transformers import AutoModelForSequenceClassification, BertConfig

    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                     intermediate_size=8, num_labels=2)
    return AutoModelForSequenceClassification.from_config(cfg)


def test_over_long_input_is_an_error_unless_truncating(tokenizer, reward_model, pairwise):
    long = " ".join(["the cat"] * 40)
    judge = RewardModelJudge(reward_model, tokenizer)
    assert judge.max_length == 48
    with pytest.raises(ValueError, match=r"over the model's max length 48 .*truncation=True"):
        judge.prob("c", [long], ["short"])
    p = RewardModelJudge(reward_model, tokenizer, truncation=True).prob("c", [long], ["short"])
    assert 0 < p[0] < 1
    with pytest.raises(ValueError, match="over the model's max length"):
        pairwise.prob("c", ["the cat " * 12], ["a dog " * 12])


def test_reward_model_nan_weights_raise(tokenizer):
    model = tiny_sequence_classifier(tokenizer, max_length=48, seed=2)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    with pytest.raises(JudgeOutputError, match="must be finite"):
        RewardModelJudge(model, tokenizer).prob("c", ["a"], ["b"])
    with pytest.raises(JudgeOutputError, match="non-finite logit"):
        PairwiseModelJudge(model, tokenizer).prob("c", ["a"], ["b"])


def test_reward_model_gpt2_and_round_trip(tmp_path, tokenizer):
    model = tiny_sequence_classifier(tokenizer, arch="gpt2", max_length=48, seed=0)
    judge = RewardModelJudge(model, tokenizer, temperature=2.0, template="{context} || {reply}")
    p = judge.prob(CONTEXTS, REPLIES[:3], REPLIES[3:6])
    # batched (padded) scoring equals one-at-a-time scoring
    single = [judge.prob(c, [a], [b])[0] for c, a, b in zip(CONTEXTS, REPLIES[:3], REPLIES[3:6], strict=True)]
    np.testing.assert_allclose(p, single, atol=1e-6)
    judge.save_pretrained(tmp_path / "rm")
    loaded = RewardModelJudge.from_pretrained(tmp_path / "rm")
    assert loaded.temperature == 2.0 and loaded.template == "{context} || {reply}"
    np.testing.assert_allclose(loaded.prob(CONTEXTS, REPLIES[:3], REPLIES[3:6]), p, atol=1e-6)


# ----------------------------------------------------------------------------- pairwise model judge
def test_pairwise_judge_is_symmetrised(pairwise):
    rng = np.random.default_rng(2)
    a, b = random_replies(rng, 16), random_replies(rng, 16)
    ctx = list(rng.choice(CONTEXTS, 16))
    p = pairwise.prob(ctx, a, b)
    np.testing.assert_allclose(p + pairwise.prob(ctx, b, a), 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pairwise.prob(ctx, a, a), 0.5, atol=1e-6)
    lab, lba = pairwise.logits(ctx, a, b), pairwise.logits(ctx, b, a)
    np.testing.assert_allclose(p, 0.5 * (expit(lab) + 1 - expit(lba)), atol=1e-6)
    assert pairwise.format("c", "x", "y") == "c [SEP] x [SEP] y"


def test_pairwise_judge_round_trip(tmp_path, tokenizer):
    judge = tiny_pairwise_judge(tokenizer=tokenizer, max_length=48, seed=5, separator="[SEP]", batch_size=4)
    ctx, a, b = CONTEXTS * 2, REPLIES[:6], REPLIES[1:7]
    p = judge.prob(ctx, a, b)
    judge.save_pretrained(tmp_path / "pm")
    loaded = PairwiseModelJudge.from_pretrained(tmp_path / "pm")
    assert loaded.separator == "[SEP]" and loaded.max_length == 48 and loaded._scorer.batch_size == 4
    np.testing.assert_allclose(loaded.prob(ctx, a, b), p, atol=1e-6)
    with pytest.raises(ValueError, match="holds a PairwiseModelJudge, not a RewardModelJudge"):
        RewardModelJudge.from_pretrained(tmp_path / "pm")


def agreement(judge, teacher, ctx, a, b):
    return float(np.mean((judge.prob(ctx, a, b) > 0.5) == (teacher.prob(ctx, a, b) > 0.5)))


def length_pairs(rng, n):
    a, b = random_replies(rng, 3 * n), random_replies(rng, 3 * n)
    keep = [i for i in range(3 * n) if len(a[i].split()) != len(b[i].split())][:n]
    return list(rng.choice(CONTEXTS, n)), [a[i] for i in keep], [b[i] for i in keep]


def test_training_on_length_lover_raises_agreement(tokenizer):
    teacher = FeatureRaterJudge.length_lover()
    rng = np.random.default_rng(0)
    ctx, a, b = length_pairs(rng, 512)
    hard = teacher.prob(ctx, a, b) > 0.5
    pairs = [(c, x, y) if h else (c, y, x) for c, x, y, h in zip(ctx, a, b, hard, strict=True)]
    tctx, ta, tb = length_pairs(np.random.default_rng(1), 300)
    judge = tiny_pairwise_judge(tokenizer=tokenizer, max_length=48, seed=0)
    before = agreement(judge, teacher, tctx, ta, tb)
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()
    torch.set_num_threads(1)
    try:
        hist = train_pairwise_judge(judge, pairs, epochs=20, lr=5e-3, batch_size=32, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    after = agreement(judge, teacher, tctx, ta, tb)
    print(f"held-out agreement with the length lover: {before:.3f} -> {after:.3f}")
    assert len(hist["loss"]) == 20 and hist["loss"][-1] < 0.5 * hist["loss"][0]
    assert after > 0.8 and after > before + 0.2
    assert not judge.model.training


def test_training_inputs(tokenizer):
    import datasets

    judge = tiny_pairwise_judge(tokenizer=tokenizer, max_length=48, seed=0)
    ds = datasets.Dataset.from_dict({"prompt": ["c", "c"], "chosen": ["a b c", "the cat"],
                                     "rejected": ["a", "x"]})
    soft = [("c", "a b", "a", 0.8), ("c", "a", "a b", 0.2)]
    h1 = train_pairwise_judge(judge, ds, epochs=1, seed=0)
    h2 = train_pairwise_judge(judge, soft, epochs=2, batch_size=1, seed=0)
    assert len(h1["loss"]) == 1 and len(h2["step_loss"]) == 4
    with pytest.raises(ValueError, match="missing"):
        train_pairwise_judge(judge, ds.remove_columns("rejected"))
    with pytest.raises(ValueError, match="pair 1 field 2 must be a string"):
        train_pairwise_judge(judge, [("c", "a", "b"), ("c", "a", None)])
    with pytest.raises(ValueError, match=r"label P\(a beats b\) = 1.5"):
        train_pairwise_judge(judge, [("c", "a", "b", 1.5)])
    with pytest.raises(ValueError, match="over the model's max length"):
        train_pairwise_judge(judge, [("c", "the cat " * 30, "b")])


def test_reward_model_scores_do_not_depend_on_the_batch_with_a_left_padding_tokenizer():
    """A classifier's score of a reply is the same alone and inside a padded batch."""
    import torch
    from transformers import AutoModelForSequenceClassification, GPT2Config

    from prefgym.llm import tiny_lm

    _, tok = tiny_lm("gpt2", seed=0)
    assert tok.padding_side == "left"
    config = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=32, n_head=2, n_positions=128,
                        num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    judge = RewardModelJudge(model, tok)
    replies = ["ok", "a much longer reply with many more words in it", "two words"]
    together = judge.prob("ctx", [replies[0]] * 2, replies[1:])
    alone = np.array([judge.prob("ctx", [replies[0]], [r])[0] for r in replies[1:]])
    assert np.allclose(together, alone, atol=1e-6)
