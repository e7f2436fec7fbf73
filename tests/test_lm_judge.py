"""LMPairwiseJudge on a tiny random LM, the exact-answer judge, and judges by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefgym.data.prompts import PromptRecord
from prefgym.errors import InvalidArgumentError
from prefgym.judges.exact_answer import ExactAnswerJudge, extract_answer
from prefgym.judges.lm_judge import DEFAULT_JUDGE_TEMPLATE, LMPairwiseJudge, check_judge_template
from prefgym.judges.registry import judge_from_spec
from prefgym.llm.tiny import tiny_lm

CTX = ["What is 2 + 2?", "What is 3 * 3?", "Name a colour."]
A = ["4", "The answer is 9.", "blue"]
B = ["5", "It is 6", "a long reply about many colours and other things"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return tiny_lm(n_layer=1, n_embd=32, n_head=2, n_positions=256, seed=1)


def _manual_first_prob(model, tok, text, label_ids):
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    two = torch.softmax(logits[list(label_ids)], dim=-1)
    return float(two[0])


def test_probability_is_the_two_order_average_of_label_probabilities(tiny):
    model, tok = tiny
    judge = LMPairwiseJudge(model, tok, batch_size=2)
    p = judge.prob(CTX, A, B)
    for i in range(len(CTX)):
        q_ab = _manual_first_prob(model, tok, DEFAULT_JUDGE_TEMPLATE.format(
            prompt=CTX[i], response_a=A[i], response_b=B[i]), judge.label_ids)
        q_ba = _manual_first_prob(model, tok, DEFAULT_JUDGE_TEMPLATE.format(
            prompt=CTX[i], response_a=B[i], response_b=A[i]), judge.label_ids)
        assert p[i] == pytest.approx(0.5 * (q_ab + 1 - q_ba), abs=1e-5)


def test_constant_sum_ties_and_batching(tiny):
    model, tok = tiny
    judge = LMPairwiseJudge(model, tok, batch_size=16)
    p, q = judge.prob(CTX, A, B), judge.prob(CTX, B, A)
    np.testing.assert_allclose(p + q, 1.0, atol=1e-6)  # both orders: no position bias
    np.testing.assert_allclose(judge.prob(CTX, A, A), 0.5, atol=1e-6)
    np.testing.assert_allclose(LMPairwiseJudge(model, tok, batch_size=1).prob(CTX, A, B), p, atol=1e-5)
    assert judge.judge(CTX, list(zip(A, B, strict=True))) == [0 if x >= 0.5 else 1 for x in p]


def test_labels_1_2_and_chat_template(tiny):
    model, tok = tiny
    tmpl = DEFAULT_JUDGE_TEMPLATE.replace("A or B", "1 or 2")
    p = LMPairwiseJudge(model, tok, template=tmpl, labels=("1", "2")).prob(CTX, A, B)
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    try:
        j = LMPairwiseJudge(model, tok)
        assert j.use_chat and j.render("c", "x", "y").startswith("<user>Which response")
        np.testing.assert_allclose(j.prob(CTX, A, B) + j.prob(CTX, B, A), 1.0, atol=1e-6)
    finally:
        tok.chat_template = None


def test_bad_templates_labels_and_long_prompts_are_clear_errors(tiny):
    model, tok = tiny
    with pytest.raises(InvalidArgumentError, match=r"lacks the placeholder\(s\) \{response_b\}"):
        LMPairwiseJudge(model, tok, template="Q: {prompt} A: {response_a}")
    with pytest.raises(InvalidArgumentError, match=r"unknown placeholder\(s\) \['answer'\]"):
        check_judge_template("{prompt} {response_a} {response_b} {answer}")
    with pytest.raises(InvalidArgumentError, match="not a valid format string"):
        check_judge_template("{prompt} {response_a} {response_b} {")
    with pytest.raises(InvalidArgumentError, match="must be one token"):
        LMPairwiseJudge(model, tok, labels=("first response", "second response"))
    with pytest.raises(InvalidArgumentError, match="two distinct"):
        LMPairwiseJudge(model, tok, labels=("A", "A"))
    judge = LMPairwiseJudge(model, tok)
    with pytest.raises(InvalidArgumentError, match="context window of 256"):
        judge.prob(["word " * 400], ["a"], ["b"])


def test_exact_answer_judge():
    assert extract_answer("2 + 2 = 4") == "4"
    assert extract_answer("Answer: 12\nbut maybe 13") == "12"  # a final-answer line wins
    assert extract_answer("1,234 apples") == "1234"
    assert extract_answer("no idea") is None
    recs = [PromptRecord("What is 2 + 2?", "4", "a"),
            PromptRecord([{"role": "user", "content": "3*3?"}], "9", "b")]
    judge = ExactAnswerJudge(recs)
    p = judge.prob(["What is 2 + 2?", "3*3?", "3*3?"], ["It is 4.", "9", "8"], ["5", "nine", "7"])
    np.testing.assert_array_equal(p, [1.0, 1.0, 0.5])
    with pytest.raises(InvalidArgumentError, match="has none"):
        ExactAnswerJudge([PromptRecord("q", None, "x")])
    with pytest.raises(InvalidArgumentError, match="not one of this judge's prompts"):
        judge.prob(["other"], ["1"], ["2"])


def test_judges_by_name(tiny, tmp_path):
    model, tok = tiny
    recs = [PromptRecord("What is 2 + 2?", "4", "a")]
    assert isinstance(judge_from_spec("exact-answer", recs), ExactAnswerJudge)
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    lm = judge_from_spec(f"lm:{tmp_path / 'lm'}")
    assert isinstance(lm, LMPairwiseJudge)
    np.testing.assert_allclose(lm.prob(CTX, A, B), LMPairwiseJudge(model, tok).prob(CTX, A, B), atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="unknown judge 'oracle'"):
        judge_from_spec("oracle")
    with pytest.raises(InvalidArgumentError, match="no such reward-model folder"):
        judge_from_spec(f"rm:{tmp_path / 'none'}")
    with pytest.raises(InvalidArgumentError, match="needs a prompt dataset"):
        judge_from_spec("exact-answer")
