"""Tiny causal language models built from configs, for tests, examples and CPU benchmarks.

:func:`tiny_lm` trains a byte-level BPE tokenizer on a small corpus with the
``tokenizers`` library, wraps it as a ``transformers`` fast tokenizer, and builds a
GPT-2 or Llama-style model with ``AutoModelForCausalLM.from_config``. With
``save_dir`` it writes both with ``save_pretrained`` and returns them *reloaded*
through ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``,
the path a user takes with a hub model, so the tests exercise the real loading code.

No network access is needed: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = ["tiny_lm", "train_tokenizer", "default_corpus", "SPECIAL_TOKENS"]

#: Special tokens of the tiny tokenizer, in vocabulary order (ids 0, 1, 2).
SPECIAL_TOKENS = {"pad_token": "<|pad|>", "bos_token": "<|bos|>", "eos_token": "<|eos|>"}

_GREETINGS = [
    ("hi", "hello! how can I help?"),
    ("hello", "hi there."),
    ("how are you?", "I am fine, thank you."),
    ("tell me a joke", "why did the chicken cross the road? to get to the other side."),
    ("what colour is the sky?", "the sky is blue."),
    ("name a fruit", "an apple."),
    ("thank you", "you are welcome."),
    ("bye", "goodbye!"),
]


def default_corpus() -> list[str]:
    """A small built-in corpus of plain-text dialogues: greetings and one-digit arithmetic.

    Uses the ``User: ...\\nAssistant: ...`` format of :func:`prefgym.llm.base.format_dialogue`.
    Deterministic, a few hundred lines.
    """
    lines = [f"User: {u}\nAssistant: {a}" for u, a in _GREETINGS]
    for a in range(10):
        for b in range(10):
            lines.append(f"User: what is {a}+{b}?\nAssistant: {a}+{b} = {a + b}.")
            lines.append(f"User: what is {a}*{b}?\nAssistant: {a}*{b} = {a * b}.")
    lines += ["Let's think step by step.", "The answer is 42.", "Counting: 1 2 3 4 5 6 7 8 9 10."]
    return lines


def _as_corpus(corpus: Iterable[str] | str | None) -> list[str]:
    if corpus is None:
        return default_corpus()
    texts = [corpus] if isinstance(corpus, str) else list(corpus)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"corpus[{bad}] must be a string; got {type(texts[bad]).__name__}")
    if not any(texts):
        raise ValueError("the tokenizer corpus is empty: pass at least one non-empty string (or None for "
                         "the built-in corpus)")
    return texts


def train_tokenizer(corpus: Iterable[str] | str | None = None, vocab_size: int = 512,
                    model_max_length: int = 256):
    """Train a byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``.

    Parameters
    ----------
    corpus
        Training texts; ``None`` uses :func:`default_corpus`.
    vocab_size
        Target vocabulary size, special tokens included. The 256 byte symbols are
        always in the vocabulary (so any text can be encoded), so a target below
        ``256 + 3`` gives a pure byte tokenizer with no merges; the trainer stops
        earlier when the corpus has no more pairs to merge. Read the actual size
        from ``len(tokenizer)``.
    model_max_length
        Stored in the tokenizer config (the model's context window).

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        Special tokens ``<|pad|>`` (id 0), ``<|bos|>`` (1), ``<|eos|>`` (2);
        ``padding_side="left"``; encoding prepends ``<|bos|>`` (pass
        ``add_special_tokens=False`` to leave it out). Deterministic given the corpus.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = _as_corpus(corpus)
    specials = list(SPECIAL_TOKENS.values())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(vocab_size), special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left",
                                   model_max_length=model_max_length, **SPECIAL_TOKENS)


def _config(arch: str, vocab: int, n_layer: int, n_embd: int, n_head: int, n_positions: int, tie: bool,
            ids: dict[str, int]):
    from transformers import GPT2Config, LlamaConfig

    if n_embd % n_head:
        raise ValueError(f"n_embd = {n_embd} must be divisible by n_head = {n_head}")
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                          n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                          tie_word_embeddings=tie, **ids)
    if arch == "llama":
        return LlamaConfig(vocab_size=vocab, hidden_size=n_embd, intermediate_size=4 * n_embd,
                           num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_head,
                           max_position_embeddings=n_positions, tie_word_embeddings=tie, **ids)
    raise ValueError(f"arch must be 'gpt2' or 'llama'; got {arch!r}")


def tiny_lm(
    arch: Literal["gpt2", "llama"] = "gpt2",
    corpus: Iterable[str] | str | None = None,
    vocab_size: int = 512,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 256,
    save_dir: str | Path | None = None,
    seed: int = 0,
    tie_word_embeddings: bool = False,
) -> tuple[Any, Any]:
    """A small randomly initialised causal LM and its freshly trained tokenizer.

    Parameters
    ----------
    arch
        ``"gpt2"`` (learned positions) or ``"llama"`` (RoPE, RMSNorm, SwiGLU).
    corpus
        Tokenizer training texts; ``None`` uses :func:`default_corpus`.
    vocab_size
        Target tokenizer vocabulary (see :func:`train_tokenizer`); the model's
        vocabulary is ``len(tokenizer)``. The default 512 leaves room for a few
        hundred merges on top of the 256 bytes.
    n_layer, n_embd, n_head
        Depth, width and heads (``n_embd`` divisible by ``n_head``). The Llama MLP
        width is ``4 * n_embd``. Dropout is 0.
    n_positions
        Context window (``n_positions`` for GPT-2, ``max_position_embeddings`` for Llama).
    save_dir
        If given, model and tokenizer are written there with ``save_pretrained`` and
        the returned objects are the ones reloaded by
        ``AutoModelForCausalLM.from_pretrained(save_dir)`` and
        ``AutoTokenizer.from_pretrained(save_dir)``.
    seed
        Seeds the weight initialisation (the global torch RNG is left untouched).
    tie_word_embeddings
        Share the input embedding and the output head. Off by default: with tied
        *random* embeddings the logits favour the current token, so greedy decoding
        just repeats the last prompt token, which makes a poor test model.

    Returns
    -------
    (model, tokenizer)
        The model in eval mode on the CPU, float32. Equal seeds and arguments give
        identical weights and vocabularies.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    sizes = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "n_positions": n_positions}
    for name, v in sizes.items():
        if int(v) < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    tokenizer = train_tokenizer(corpus, vocab_size=vocab_size, model_max_length=n_positions)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    config = _config(arch, len(tokenizer), n_layer, n_embd, n_head, n_positions, tie_word_embeddings, ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(**ids)
    model.eval()
    if save_dir is None:
        return model, tokenizer
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(save_dir)
    tokenizer.save_pretrained(save_dir)
    return AutoModelForCausalLM.from_pretrained(save_dir).eval(), AutoTokenizer.from_pretrained(save_dir)
