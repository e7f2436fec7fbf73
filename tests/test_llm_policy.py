"""LMPolicy and tiny_lm: the from_pretrained path, batched generation, log-prob consistency, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from prefgym.llm import TextGenerator  # noqa: E402
from prefgym.llm.policy import Generation, LMPolicy  # noqa: E402
from prefgym.llm.tiny import tiny_lm  # noqa: E402

ARCHS = ["gpt2", "llama"]
SIZE = dict(n_layer=2, n_embd=32, n_head=2, n_positions=64)
PROMPTS = ["User: hi\nAssistant:", "User: what is 2+3?\nAssistant:", "5",
           "User: tell me a joke\nAssistant: why"]


@pytest.fixture(scope="module", params=ARCHS)
def saved(request, tmp_path_factory):
    """(arch, folder, in-memory model, in-memory tokenizer) of a tiny model written with save_pretrained."""
    path = tmp_path_factory.mktemp(f"tiny-{request.param}")
    tiny_lm(request.param, save_dir=path, **SIZE)
    model, tok = tiny_lm(request.param, **SIZE)  # same seed, never saved
    return request.param, path, model, tok


@pytest.fixture(scope="module")
def policy(saved):
    _, path, _, _ = saved
    return LMPolicy.from_pretrained(path, reference="copy", max_new_tokens=6, stop_strings=None)


def naive_logprobs(model, prompt_ids: torch.Tensor, response_ids: torch.Tensor) -> torch.Tensor:
    """One unpadded sequence, positions 0..n-1: the reference computation."""
    ids = torch.cat([prompt_ids, response_ids])[None]
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1: -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, response_ids[:, None])[:, 0]


# ------------------------------------------------------------------ loading
def test_save_pretrained_reloads_through_auto_classes_identically(saved):
    arch, path, model, tok = saved
    assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    loaded = AutoModelForCausalLM.from_pretrained(path)  # what a user does with a hub name
    ltok = AutoTokenizer.from_pretrained(path)
    assert type(loaded) is type(model) and loaded.config.model_type == arch
    assert ltok.get_vocab() == tok.get_vocab() and ltok.padding_side == "left"
    assert (ltok.pad_token_id, ltok.bos_token_id, ltok.eos_token_id) == (0, 1, 2)
    enc = tok(PROMPTS[1], return_tensors="pt")
    assert enc["input_ids"][0, 0] == tok.bos_token_id
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, loaded(**enc).logits)
    a = LMPolicy(model, tok, max_new_tokens=6).generate(PROMPTS, do_sample=False)
    b = LMPolicy.from_pretrained(path, max_new_tokens=6).generate(PROMPTS, do_sample=False)
    assert a.texts == b.texts
    assert all(torch.equal(x, y) for x, y in zip(a.response_ids, b.response_ids, strict=True))


def test_policy_save_pretrained_round_trip(policy, tmp_path):
    policy.save_pretrained(tmp_path / "p")
    again = LMPolicy.from_pretrained(tmp_path / "p", max_new_tokens=6, stop_strings=None)
    g = policy.generate(PROMPTS, seed=0)
    lp = again.sequence_logprobs(g.prompts, g.response_ids)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(g.logprobs, lp, strict=True))


def test_tiny_lm_is_deterministic_given_the_seed():
    m1, t1 = tiny_lm("gpt2", seed=3, **SIZE)
    m2, t2 = tiny_lm("gpt2", seed=3, **SIZE)
    m3, _ = tiny_lm("gpt2", seed=4, **SIZE)
    assert t1.get_vocab() == t2.get_vocab()
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    rng_state = torch.get_rng_state()
    tiny_lm("llama", seed=5, **SIZE)
    assert torch.equal(rng_state, torch.get_rng_state())  # the global RNG is left alone


def test_tiny_lm_bad_arguments():
    with pytest.raises(ValueError, match="arch"):
        tiny_lm("bert", **SIZE)
    with pytest.raises(ValueError, match="divisible"):
        tiny_lm("gpt2", n_layer=1, n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="corpus is empty"):
        tiny_lm("gpt2", corpus=[""], **SIZE)


# ------------------------------------------------------------- generation
def test_batched_greedy_equals_one_prompt_at_a_time(policy):
    lengths = [len(policy.tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert len(set(lengths)) > 1  # left padding is exercised
    batched = policy.generate(PROMPTS, do_sample=False)
    for i, p in enumerate(PROMPTS):
        single = policy.generate([p], do_sample=False)
        assert torch.equal(single.response_ids[0], batched.response_ids[i])
        assert single.texts[0] == batched.texts[i]
        assert torch.allclose(single.logprobs[0], batched.logprobs[i], atol=1e-5)


def test_generation_fields_and_layout(policy):
    g = policy.generate(PROMPTS[:2], num_return_sequences=3, seed=0)
    assert isinstance(g, Generation) and len(g) == 6
    assert g.prompts == [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3 and g.prompt_index == [0, 0, 0, 1, 1, 1]
    assert all(len(r) == len(lp) for r, lp in zip(g.response_ids, g.logprobs, strict=True))
    assert g.lengths.tolist() == [len(r) for r in g.response_ids] and max(g.lengths) <= 6
    assert set(g.stop_reasons) <= {"eos", "stop", "length"}
    assert torch.allclose(g.logprob_sums, torch.stack([lp.sum() for lp in g.logprobs]))
    assert all((lp <= 0).all() for lp in g.logprobs)
    ids, mask = g.padded_response_ids()
    assert ids.shape == mask.shape == (6, int(g.lengths.max())) and mask.sum() == g.lengths.sum()
    decoded = policy.tokenizer.batch_decode([r.tolist() for r in g.response_ids], skip_special_tokens=True)
    assert decoded == g.texts  # no stop strings: text is the decoded ids


def test_logprobs_match_teacher_forcing_and_naive_computation(policy):
    g = policy.generate(PROMPTS, num_return_sequences=2, seed=1)
    tf = policy.sequence_logprobs(g.prompt_ids, g.response_ids)
    tf_str_prompts = policy.sequence_logprobs(g.prompts, g.response_ids, batch_size=3)
    for i in range(len(g)):
        naive = naive_logprobs(policy.model, g.prompt_ids[i], g.response_ids[i])
        assert torch.allclose(tf[i], g.logprobs[i], atol=1e-5, rtol=0)
        assert torch.allclose(tf_str_prompts[i], g.logprobs[i], atol=1e-5, rtol=0)
        assert torch.allclose(naive, g.logprobs[i], atol=1e-5, rtol=0)


def test_reference_copy_gives_identical_reference_logprobs(policy):
    assert all(not p.requires_grad for p in policy.reference_model.parameters())
    g = policy.generate(PROMPTS, num_return_sequences=2, seed=2)
    assert g.ref_logprobs is not None
    for lp, ref in zip(g.logprobs, g.ref_logprobs, strict=True):
        assert torch.allclose(lp, ref, atol=1e-5, rtol=0)
    assert torch.allclose(g.ref_logprob_sums, g.logprob_sums, atol=1e-4)
    ref = policy.sequence_logprobs(g.prompt_ids, g.response_ids, reference=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, g.ref_logprobs, strict=True))


def test_sequence_logprobs_with_grad(policy):
    g = policy.generate(PROMPTS, seed=3)
    lp = policy.sequence_logprobs(g.prompt_ids, g.response_ids, requires_grad=True)
    assert all(x.requires_grad for x in lp if len(x))
    policy.model.zero_grad()
    torch.stack([x.sum() for x in lp]).sum().backward()
    grads = [p.grad for p in policy.model.parameters() if p.grad is not None]
    assert grads and any(gr.abs().sum() > 0 for gr in grads)
    policy.model.zero_grad(set_to_none=True)
    assert all(torch.allclose(a.detach().cpu(), b, atol=1e-6) for a, b in zip(lp, g.logprobs, strict=True))


def test_string_responses_are_scored_without_special_tokens(policy):
    tok = policy.tokenizer
    resp = " 5."
    lp = policy.sequence_logprobs([PROMPTS[1]], [resp])[0]
    r_ids = torch.tensor(tok(resp, add_special_tokens=False)["input_ids"])
    p_ids = torch.tensor(tok(PROMPTS[1])["input_ids"])
    assert torch.allclose(lp, naive_logprobs(policy.model, p_ids, r_ids), atol=1e-5)


def test_seed_determinism_and_global_rng_untouched(policy):
    state = torch.get_rng_state()
    a = policy.generate(PROMPTS[:2], num_return_sequences=2, seed=7)
    b = policy.generate(PROMPTS[:2], num_return_sequences=2, seed=7)
    c = policy.generate(PROMPTS[:2], num_return_sequences=2, seed=8)
    assert torch.equal(state, torch.get_rng_state())
    assert a.texts == b.texts and all(torch.equal(x, y) for x, y in zip(a.response_ids, b.response_ids,
                                                                          strict=True))
    assert a.texts != c.texts


def test_text_generator_protocol(policy):
    assert isinstance(policy, TextGenerator)
    r1 = policy.generate_text(PROMPTS, rng=np.random.default_rng(0))
    r2 = policy.generate_text(PROMPTS, rng=np.random.default_rng(0))
    assert r1 == r2 and len(r1) == len(PROMPTS) and all(isinstance(r, str) for r in r1)


def test_stop_string_cuts_text_ids_and_logprobs_consistently(saved):
    _, path, _, _ = saved
    free = LMPolicy.from_pretrained(path, max_new_tokens=10, stop_strings=None)
    full = free.generate(PROMPTS, do_sample=False)
    # a prompt whose greedy reply has an ASCII character first appearing after its first two characters
    i, pos = next((i, j) for i, t in enumerate(full.texts) for j, ch in enumerate(t)
                  if j >= 2 and ch.isascii() and ch.isprintable() and ch not in t[:j])
    text, ids, stop = full.texts[i], full.response_ids[i], full.texts[i][pos]
    stopped = LMPolicy.from_pretrained(path, max_new_tokens=10, stop_strings=(stop, "never-seen"))
    g = stopped.generate([PROMPTS[i]], do_sample=False)
    n = len(g.response_ids[0])
    assert g.stop_reasons == ["stop"] and g.texts == [text[:pos]]
    assert torch.equal(g.response_ids[0], ids[:n])
    dec = stopped.tokenizer.decode
    assert stop in dec(ids[:n].tolist(), skip_special_tokens=True)
    assert stop not in dec(ids[: n - 1].tolist(), skip_special_tokens=True)  # kept the completing token
    assert torch.allclose(g.logprobs[0], full.logprobs[i][:n])


def test_eos_ends_the_reply_and_is_kept(saved):
    _, path, _, _ = saved
    pol = LMPolicy.from_pretrained(path, max_new_tokens=8, stop_strings=None)
    full = pol.generate(PROMPTS, do_sample=False)
    i = next(i for i, r in enumerate(full.response_ids) if len(r) >= 6)
    ids = full.response_ids[i]
    pol.eos_token_ids = (int(ids[5]),)  # pretend the 6th greedy token is EOS
    first = int((ids == ids[5]).nonzero()[0])
    g = pol.generate([PROMPTS[i]], do_sample=False)
    assert g.stop_reasons == ["eos"] and torch.equal(g.response_ids[0], ids[: first + 1])
    assert torch.allclose(g.logprobs[0], full.logprobs[i][: first + 1])


def test_ignoring_eos_gives_full_length_replies(saved):
    _, path, _, _ = saved
    pol = LMPolicy.from_pretrained(path, max_new_tokens=8, stop_strings=None)
    full = pol.generate(PROMPTS, do_sample=False)
    i = next(i for i, r in enumerate(full.response_ids) if len(r) == 8)
    ids = full.response_ids[i]
    pol.model.generation_config.eos_token_id = int(ids[2])  # the model's own EOS now occurs in the reply
    pol.eos_token_ids = ()
    g = pol.generate([PROMPTS[i], PROMPTS[i]], do_sample=False)
    assert g.stop_reasons == ["length"] * 2
    assert all(torch.equal(r, ids) for r in g.response_ids)


def test_tokenizer_without_pad_token_pads_with_eos(saved):
    _, path, model, _ = saved
    tok = AutoTokenizer.from_pretrained(path)
    tok.pad_token = None
    pol = LMPolicy(model, tok, max_new_tokens=6, stop_strings=None)
    assert pol.pad_token_id == tok.eos_token_id
    batched = pol.generate(PROMPTS, do_sample=False)
    for i, p in enumerate(PROMPTS[:2]):
        assert torch.equal(pol.generate([p], do_sample=False).response_ids[0], batched.response_ids[i])


# ---------------------------------------------------------------- errors
def test_context_window_is_checked_never_truncated(policy):
    long_prompt = "1 2 3 4 5 6 7 8 9 "
    while len(policy.tokenizer(long_prompt + "1 ")["input_ids"]) < 64 - 8:
        long_prompt += "1 "
    n = len(policy.tokenizer(long_prompt)["input_ids"])
    assert policy.max_positions == 64 and 8 <= 64 - n < 16
    msg = rf"prompt 1: {n} prompt tokens \+ 16 new tokens = {n + 16} exceeds the model's context window of 64"
    with pytest.raises(ValueError, match=msg):
        policy.generate([PROMPTS[0], long_prompt], max_new_tokens=16)
    with pytest.raises(ValueError, match=r"prompt 0: .* exceeds"):
        policy.generate([PROMPTS[0]], max_new_tokens=64)
    g = policy.generate([long_prompt], max_new_tokens=64 - n, do_sample=False)  # exactly fits
    assert len(g.response_ids[0]) <= 64 - n
    with pytest.raises(ValueError, match=r"pair 0: .* response tokens .* exceeds"):
        policy.sequence_logprobs([PROMPTS[0]], [torch.zeros(64, dtype=torch.long)])


def test_bad_inputs_raise_clear_errors(policy):
    with pytest.raises(ValueError, match="empty"):
        policy.generate([])
    with pytest.raises(ValueError, match="empty"):
        policy.sequence_logprobs([], [])
    with pytest.raises(TypeError, match="single string"):
        policy.generate("hi")
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        policy.generate(["hi", 3])
    with pytest.raises(ValueError, match="equal lengths"):
        policy.sequence_logprobs(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="max_new_tokens"):
        policy.generate(["hi"], max_new_tokens=0)
    with pytest.raises(ValueError, match="num_return_sequences"):
        policy.generate(["hi"], num_return_sequences=0)
    with pytest.raises(ValueError, match="temperature"):
        LMPolicy(policy.model, policy.tokenizer, temperature=0.0)
    with pytest.raises(ValueError, match="stop_strings"):
        LMPolicy(policy.model, policy.tokenizer, stop_strings=("",))
    no_ref = LMPolicy(policy.model, policy.tokenizer)
    with pytest.raises(ValueError, match="no reference"):
        no_ref.sequence_logprobs(["a"], ["b"], reference=True)
    assert no_ref.generate(["hi"], seed=0).ref_logprobs is None


def test_prompt_that_encodes_to_nothing(saved):
    _, path, model, _ = saved
    tok = AutoTokenizer.from_pretrained(path)
    tok._tokenizer.post_processor = None  # a tokenizer that adds no BOS: "" has no tokens
    pol = LMPolicy(model, tok, max_new_tokens=4)
    with pytest.raises(ValueError, match=r"prompt 1 \(''\) encodes to zero tokens"):
        pol.generate(["hi", ""])
