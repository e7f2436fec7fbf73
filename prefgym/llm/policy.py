"""A ``transformers`` causal LM as a policy: batched sampling with log-probs under it and a reference.

:class:`LMPolicy` wraps any ``AutoModelForCausalLM`` and its tokenizer, whether
loaded from a hub name, from a local folder, or built by
:func:`prefgym.llm.tiny.tiny_lm`. It generates for a batch of prompts in one
``model.generate`` call (left padding, KV cache) and returns a :class:`Generation`
with the sampled token ids, the decoded replies and per-token log-probabilities
under the policy and, when one is set, a frozen reference model.

Log-probability convention
--------------------------
``logprobs`` are ``log softmax`` of the model's *raw* logits, i.e. log-probs under
the policy ``pi_theta(y_t | x, y_<t)`` itself at temperature 1, whatever the
sampling temperature, top-k or top-p. This is the quantity KL penalties,
importance ratios and the DPO/IPO/MPO losses use, and it is what
:meth:`LMPolicy.sequence_logprobs` recomputes by teacher forcing. (Under
``temperature != 1`` or truncation the samples come from a different
distribution than ``logprobs`` describe; correct for it yourself if you need
the behaviour policy's probabilities.)

Ends of replies
---------------
A reply ends at the first EOS token, at the first token whose decoding completes
a stop string (``stop_strings``, ``"\\n"`` by default, so a dialogue reply is one
line), or after ``max_new_tokens`` tokens. The ending token (EOS, or the token
that completes the stop string) is kept in ``response_ids`` and ``logprobs``,
since the policy chose to stop; ``texts`` leave out EOS and everything from the
stop string on. ``stop_reasons`` says which of ``"eos"``, ``"stop"`` or
``"length"`` applied.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["LMPolicy", "Generation"]

TokenIds = torch.Tensor | Sequence[int]


@dataclass
class Generation:
    """The output of :meth:`LMPolicy.generate`; row ``i`` is sample ``i % k`` of prompt ``i // k``.

    Attributes
    ----------
    prompts
        The prompt of each row (each prompt repeated ``num_return_sequences`` times).
    prompt_index
        Index of each row's prompt in the list passed to ``generate``.
    prompt_ids
        Unpadded prompt token ids, one 1-D ``LongTensor`` per row (CPU).
    response_ids
        Unpadded generated token ids (ending token included, padding removed).
    texts
        Decoded replies (special tokens skipped, cut before any stop string).
    logprobs
        Per-token log-probs of ``response_ids`` under the policy at temperature 1
        (see the module docs), one 1-D float tensor per row, same lengths.
    ref_logprobs
        Same tokens under the reference model, or ``None`` without a reference.
    stop_reasons
        ``"eos"``, ``"stop"`` (a stop string) or ``"length"`` (``max_new_tokens`` reached).
    """

    prompts: list[str]
    prompt_index: list[int]
    prompt_ids: list[torch.Tensor]
    response_ids: list[torch.Tensor]
    texts: list[str]
    logprobs: list[torch.Tensor]
    ref_logprobs: list[torch.Tensor] | None = None
    stop_reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def lengths(self) -> torch.Tensor:
        """Number of response tokens per row, shape ``(n,)``."""
        return torch.tensor([len(r) for r in self.response_ids], dtype=torch.long)

    @property
    def logprob_sums(self) -> torch.Tensor:
        """``log pi(y | x)`` per row: the sum of ``logprobs``, shape ``(n,)``."""
        return torch.stack([lp.sum() for lp in self.logprobs]) if self.logprobs else torch.zeros(0)

    @property
    def ref_logprob_sums(self) -> torch.Tensor | None:
        """``log pi_ref(y | x)`` per row, or ``None`` without a reference."""
        if self.ref_logprobs is None:
            return None
        return torch.stack([lp.sum() for lp in self.ref_logprobs]) if self.ref_logprobs else torch.zeros(0)

    def padded_response_ids(self, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids, mask)`` of shape ``(n, max_len)``; ``mask`` is ``True`` on real tokens."""
        return _right_pad(self.response_ids, pad_id)


def _right_pad(seqs: Sequence[torch.Tensor], pad: float | int) -> tuple[torch.Tensor, torch.Tensor]:
    n, width = len(seqs), max((len(s) for s in seqs), default=0)
    dtype = seqs[0].dtype if seqs else torch.long
    out = torch.full((n, width), pad, dtype=dtype)
    mask = torch.zeros((n, width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = True
    return out, mask


def _keeps_logits(model) -> bool:
    """Whether ``model``'s forward takes ``logits_to_keep`` (transformers' causal LMs; peft passes it on)."""
    import inspect

    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    if not isinstance(base, torch.nn.Module):
        return False
    try:
        return "logits_to_keep" in inspect.signature(type(base).forward).parameters
    except (TypeError, ValueError):
        return False


class _TeacherInputs(NamedTuple):
    """A teacher-forcing batch: ``ids``/``mask``/``pos`` (rows, P + R), response mask (rows, R)."""

    ids: torch.Tensor
    mask: torch.Tensor
    pos: torch.Tensor
    r_mask: torch.Tensor
    P: int
    R: int


class _StopOnStrings:
    """HF stopping criterion: a row stops once its *generated* text contains a stop string.

    Records, per row, the number of generated tokens at which that first happened
    (``-1``: never), so the post-processing cuts exactly where generation stopped.
    """

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int, n_rows: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, tuple(stops), prompt_len
        self.stopped_at = torch.full((n_rows,), -1, dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        gen = input_ids[:, self.prompt_len:].tolist()
        texts = self.tokenizer.batch_decode(gen, skip_special_tokens=True)
        hit = torch.tensor([any(s in t for s in self.stops) for t in texts], dtype=torch.bool)
        new = hit & (self.stopped_at < 0)
        self.stopped_at[new] = len(gen[0]) if gen else 0
        return hit.to(input_ids.device)


def _criteria_list(criterion):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Wrapped(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return criterion(input_ids, scores, **kwargs)

    return StoppingCriteriaList([_Wrapped()])


class LMPolicy:
    """A causal LM policy: batched generation and teacher-forced log-probs.

    Parameters
    ----------
    model
        A ``transformers`` causal LM (anything ``AutoModelForCausalLM`` returns).
    tokenizer
        Its tokenizer. The policy pads batches itself (prompts on the left,
        responses on the right), so the tokenizer's ``padding_side`` does not matter
        and is left unchanged; without a pad token the EOS token pads (attention
        masks make the choice irrelevant to the results).
    reference_model
        A frozen reference ``pi_ref`` sharing the tokenizer, or ``None``. Its
        parameters get ``requires_grad=False``.
    device
        Where the models run (``"cpu"``, ``"cuda"``, ...). Returned tensors are on the CPU.
    max_new_tokens
        Default cap on generated tokens per reply.
    temperature, top_p, top_k
        Sampling settings (``top_k=0`` and ``top_p=1`` disable truncation). They
        shape the samples only, not the reported ``logprobs`` (module docs).
    stop_strings
        A reply ends at the first token completing any of these; ``None`` or
        ``()`` disables. Default: one line per reply.
    chat_template
        Render prompts with the tokenizer's chat template: ``None`` (default) when the
        tokenizer has one, ``True`` always (an error without one), ``False`` never. A
        prompt is a string (one user message under a template) or a conversation, a
        list of ``{"role", "content"}`` dicts (:mod:`prefgym.llm.chat`); rendered text is
        encoded without adding special tokens (the template holds them).

    Attributes
    ----------
    eos_token_ids
        Token ids that end a reply: the model's ``generation_config.eos_token_id``,
        else the tokenizer's. Set to ``()`` to ignore EOS (fixed-length replies).
    pad_token_id
        Id used for padding (the tokenizer's pad token, else the first EOS id).
    max_positions
        The model's context window from its config (``None`` if it has none).
    """

    def __init__(
        self,
        model,
        tokenizer,
        reference_model=None,
        device: str | torch.device = "cpu",
        max_new_tokens: int = 32,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        stop_strings: Sequence[str] | None = ("\n",),
        chat_template: bool | None = None,
    ):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1]; got {top_p!r}")
        if int(top_k) < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it); got {top_k!r}")
        self._check_max_new(max_new_tokens)
        if isinstance(stop_strings, str):
            stop_strings = (stop_strings,)
        stops = tuple(stop_strings or ())
        if any(not isinstance(s, str) or not s for s in stops):
            raise ValueError(f"stop_strings must be non-empty strings; got {stop_strings!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.reference_model = None
        if reference_model is not None:
            self.reference_model = reference_model.to(self.device).eval()
            self.reference_model.requires_grad_(False)
        self.max_new_tokens, self.temperature = int(max_new_tokens), float(temperature)
        self.top_p, self.top_k = float(top_p), int(top_k)
        self.stop_strings = stops
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_token_ids: tuple[int, ...] = tuple(eos) if isinstance(eos, list | tuple) else \
            (() if eos is None else (int(eos),))
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = self.eos_token_ids[0] if self.eos_token_ids else 0
        self.pad_token_id = int(pad)
        self.max_positions = self._max_positions(model.config)
        from prefgym.llm.chat import has_chat_template

        if chat_template and not has_chat_template(tokenizer):
            raise ValueError("chat_template=True but the tokenizer has no chat template; pass False (plain "
                             "prompts) or a tokenizer with one")
        self.chat_template: bool | None = None if chat_template is None else bool(chat_template)
        self.uses_chat_template = (has_chat_template(tokenizer) if chat_template is None
                                   else bool(chat_template))

    # ------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        reference: str | Path | None = None,
        tokenizer: str | Path | None = None,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ) -> LMPolicy:
        """Load with ``AutoModelForCausalLM`` / ``AutoTokenizer``: a hub name and a local folder work alike.

        Parameters
        ----------
        name_or_path
            A folder written by ``save_pretrained``, a ``.gguf`` file or a shipped name such as
            ``smollm2-135m-instruct`` (converted once into a cached folder by
            :func:`prefgym.llm.pretrained.resolve_model`), or a hub model id.
        reference
            ``None`` (no reference), ``"copy"`` (a frozen deep copy of the loaded
            policy, the usual ``pi_ref = pi_init``) or another name or path.
        tokenizer
            Tokenizer name or path, if it differs from ``name_or_path``.
        model_kwargs
            Passed to ``from_pretrained`` of both models (e.g. ``{"dtype": torch.bfloat16}``).
        **kwargs
            Passed to :class:`LMPolicy` (``device``, ``max_new_tokens``, ...).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from prefgym.llm.pretrained import KNOWN_MODELS, resolve_model

        mk = dict(model_kwargs or {})
        known = str(name_or_path).lower().replace("_", "-") in KNOWN_MODELS
        if known or Path(str(name_or_path)).expanduser().exists():
            name_or_path = resolve_model(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **mk).eval()
        tok = AutoTokenizer.from_pretrained(tokenizer if tokenizer is not None else name_or_path)
        if reference is None:
            ref = None
        elif str(reference) == "copy":
            ref = copy.deepcopy(model)
        else:
            ref = AutoModelForCausalLM.from_pretrained(reference, **mk)
        return cls(model, tok, reference_model=ref, **kwargs)

    def save_pretrained(self, path: str | Path) -> None:
        """Write model and tokenizer with ``save_pretrained`` (reload with :meth:`from_pretrained`)."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    # ------------------------------------------------------------- validation
    @staticmethod
    def _max_positions(config) -> int | None:
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            v = getattr(config, name, None)
            if isinstance(v, int) and v > 0:
                return v
        return None

    @staticmethod
    def _check_max_new(n) -> None:
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"max_new_tokens must be a positive integer; got {n!r}")

    def _check_prompts(self, prompts: Sequence[str]) -> list[str]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not a single string; wrap it in a list")
        prompts = list(prompts)
        if not prompts:
            raise ValueError("no prompts: the prompt list is empty")
        from prefgym.llm.chat import check_prompt, is_messages

        bad = next((i for i, p in enumerate(prompts) if not (isinstance(p, str) or is_messages(p))), None)
        if bad is not None:
            raise TypeError(f"prompts[{bad}] must be a string or a list of chat messages; got "
                            f"{type(prompts[bad]).__name__}")
        return [check_prompt(p, f"prompts[{i}]") for i, p in enumerate(prompts)]

    def render(self, prompt) -> str:
        """The text the model sees for a prompt (string or chat messages): see ``chat_template``."""
        from prefgym.llm.chat import render_prompt

        return render_prompt(self.tokenizer, prompt, self.uses_chat_template)[0]

    def encode_prompts(self, prompts: Sequence) -> list[torch.Tensor]:
        """Token ids of prompts (strings or chat messages), rendered as :meth:`generate` does."""
        return self._encode(self._check_prompts(prompts), special=True)

    def _encode(self, texts: Sequence, special: bool) -> list[torch.Tensor]:
        if not special:  # responses: raw text, no template
            enc = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
            return [torch.tensor(e, dtype=torch.long) for e in enc]
        from prefgym.llm.chat import render_prompt

        out = []
        for x in texts:  # prompts: through the chat template when it applies
            text, rendered = render_prompt(self.tokenizer, x, self.uses_chat_template)
            ids = self.tokenizer(text, add_special_tokens=not rendered)["input_ids"]
            out.append(torch.tensor(ids, dtype=torch.long))
        return out

    def _as_ids(self, items: Sequence[str | TokenIds], special: bool, what: str) -> list[torch.Tensor]:
        if isinstance(items, str):
            raise TypeError(f"{what} must be a sequence, not a single string; wrap it in a list")
        items = list(items)
        out: list[torch.Tensor | None] = [None] * len(items)
        from prefgym.llm.chat import is_messages

        str_idx = [i for i, x in enumerate(items) if isinstance(x, str) or is_messages(x)]
        if str_idx:
            for i, ids in zip(str_idx, self._encode([items[i] for i in str_idx], special), strict=True):
                out[i] = ids
        for i, x in enumerate(items):
            if out[i] is None:
                t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.long)
                out[i] = t.reshape(-1).long().cpu()
        return out  # type: ignore[return-value]

    def _check_window(self, lengths: Sequence[int], extra: int | Sequence[int], what: str) -> None:
        if self.max_positions is None:
            return
        extras = [extra] * len(lengths) if isinstance(extra, int) else list(extra)
        for i, (n, m) in enumerate(zip(lengths, extras, strict=True)):
            if n + m > self.max_positions:
                kind = "new" if what == "prompt" else "response"
                raise ValueError(
                    f"{what} {i}: {n} prompt tokens + {m} {kind} tokens = "
                    f"{n + m} exceeds the model's context window of {self.max_positions} positions; shorten "
                    f"the prompt or lower max_new_tokens (nothing is truncated silently)")

    # ------------------------------------------------------------- generation
    def _left_pad(self, seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if len(s):
                ids[i, width - len(s):] = s
                mask[i, width - len(s):] = 1
        return ids, mask

    def _generation_config(self, do_sample: bool, max_new: int, k: int):
        from transformers import GenerationConfig

        kw: dict[str, Any] = dict(
            max_new_tokens=max_new, min_new_tokens=0, do_sample=do_sample, num_beams=1,
            num_return_sequences=k, use_cache=True, return_dict_in_generate=True, output_logits=True,
            output_scores=False, pad_token_id=self.pad_token_id, repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            # [] rather than None: None would be filled in from model.generation_config
            eos_token_id=list(self.eos_token_ids))
        if do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, typical_p=1.0)
        return GenerationConfig(**kw)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        num_return_sequences: int = 1,
        seed: int | None = None,
        do_sample: bool = True,
        max_new_tokens: int | None = None,
        compute_ref: bool = True,
    ) -> Generation:
        """Reply to a batch of prompts in one batched ``model.generate`` call.

        Parameters
        ----------
        prompts
            Prompt strings (encoded with the tokenizer's special tokens, e.g. BOS).
        num_return_sequences
            Samples per prompt ``k``; rows are prompt-major (``k`` rows per prompt).
        seed
            Seeds the sampling (the global torch RNG state is restored afterwards);
            ``None`` draws from the global RNG.
        do_sample
            ``False``: greedy decoding.
        max_new_tokens
            Overrides the policy default for this call.
        compute_ref
            Compute ``ref_logprobs`` when a reference model is set.

        Raises
        ------
        ValueError
            Empty prompt list, a prompt that encodes to no tokens, or a prompt whose
            length plus ``max_new_tokens`` exceeds the model's context window (the
            message names the prompt and the lengths).
        """
        prompts = self._check_prompts(prompts)
        max_new = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        self._check_max_new(max_new)
        k = int(num_return_sequences)
        if k < 1:
            raise ValueError(f"num_return_sequences must be >= 1; got {num_return_sequences!r}")
        p_ids = self._encode(prompts, special=True)
        empty = next((i for i, p in enumerate(p_ids) if len(p) == 0), None)
        if empty is not None:
            raise ValueError(f"prompt {empty} ({prompts[empty]!r}) encodes to zero tokens; a causal LM needs "
                             "at least one token to condition on (use a tokenizer that adds BOS, or a "
                             "non-empty prompt)")
        self._check_window([len(p) for p in p_ids], int(max_new), "prompt")

        ids, mask = self._left_pad(p_ids)
        P, n_rows = ids.shape[1], len(prompts) * k
        criterion = None
        if self.stop_strings:
            criterion = _StopOnStrings(self.tokenizer, self.stop_strings, P, n_rows)
        gen_kw: dict[str, Any] = dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                      generation_config=self._generation_config(do_sample, int(max_new), k))
        if criterion is not None:
            gen_kw["stopping_criteria"] = _criteria_list(criterion)
        was_training = self.model.training
        self.model.eval()
        try:
            if seed is None:
                out = self.model.generate(**gen_kw)
            else:
                devices = [self.device] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(int(seed))
                    out = self.model.generate(**gen_kw)
        finally:
            self.model.train(was_training)

        gen = out.sequences[:, P:].cpu()
        T = gen.shape[1]
        # out.logits: one (n_rows, V) tensor per step, raw (before temperature / top-k / top-p)
        lp_all = torch.zeros((n_rows, T))
        gen_dev = out.sequences[:, P:]
        for t, step_logits in enumerate(out.logits):
            lp = torch.log_softmax(step_logits.float(), dim=-1).gather(-1, gen_dev[:, t, None])
            lp_all[:, t] = lp[:, 0].cpu()
        lengths, reasons = self._response_lengths(gen, criterion)
        resp = [gen[i, : lengths[i]].clone() for i in range(n_rows)]
        lps = [lp_all[i, : lengths[i]].clone() for i in range(n_rows)]
        texts = [self._cut(t) for t in self.tokenizer.batch_decode([r.tolist() for r in resp],
                                                                   skip_special_tokens=True)]
        index = [i // k for i in range(n_rows)]
        prompt_rows = [p_ids[j] for j in index]
        ref = None
        if self.reference_model is not None and compute_ref:
            ref = self._logprobs(self.reference_model, prompt_rows, resp, requires_grad=False)
        return Generation(prompts=[prompts[j] for j in index], prompt_index=index,
                          prompt_ids=[p.clone() for p in prompt_rows], response_ids=resp, texts=texts,
                          logprobs=lps, ref_logprobs=ref, stop_reasons=reasons)

    def _response_lengths(self, gen: torch.Tensor,
                          criterion: _StopOnStrings | None) -> tuple[list[int], list[str]]:
        n, T = gen.shape
        lengths, reasons = [T] * n, ["length"] * n
        if self.eos_token_ids and T:
            is_eos = torch.isin(gen, torch.tensor(self.eos_token_ids))
            has = is_eos.any(dim=1)
            first = is_eos.int().argmax(dim=1)
            for i in torch.nonzero(has).flatten().tolist():
                lengths[i], reasons[i] = int(first[i]) + 1, "eos"
        if criterion is not None:
            for i, s in enumerate(criterion.stopped_at.tolist()):
                if 0 < s < lengths[i] or (s == lengths[i] and reasons[i] == "length"):
                    lengths[i], reasons[i] = s, "stop"
        return lengths, reasons

    def _cut(self, text: str) -> str:
        cut = min((j for j in (text.find(s) for s in self.stop_strings) if j >= 0), default=len(text))
        return text[:cut]

    def generate_text(self, prompts: Sequence[str], rng: np.random.Generator | None = None) -> list[str]:
        """One sampled reply per prompt (the :class:`~prefgym.llm.base.TextGenerator` API).

        The generation seed is drawn from ``rng``; ``None`` samples from torch's global RNG.
        """
        seed = None if rng is None else int(rng.integers(0, 2**63 - 1))
        return self.generate(prompts, seed=seed, compute_ref=False).texts

    # ------------------------------------------------------- teacher forcing
    def _logprobs(self, model, prompt_ids: Sequence[torch.Tensor], response_ids: Sequence[torch.Tensor],
                  requires_grad: bool, batch_size: int | None = None) -> list[torch.Tensor]:
        n = len(prompt_ids)
        if n == 0:
            return []
        bs = n if batch_size is None else max(1, int(batch_size))
        out: list[torch.Tensor] = []
        ctx = torch.enable_grad() if requires_grad else torch.no_grad()
        with ctx:
            for start in range(0, n, bs):
                stop = start + bs
                out += self._logprobs_batch(model, prompt_ids[start:stop], response_ids[start:stop],
                                            requires_grad)
        return out

    def _teacher_inputs(self, prompt_ids, response_ids) -> _TeacherInputs:
        """Left-padded prompts + right-padded responses, attention mask and positions, on the device."""
        p_ids, p_mask = self._left_pad(prompt_ids)
        r_ids, r_mask = _right_pad(list(response_ids), self.pad_token_id)
        ids = torch.cat([p_ids, r_ids], dim=1).to(self.device)
        mask = torch.cat([p_mask, r_mask.long()], dim=1).to(self.device)
        # same positions as generation with left padding: count real tokens only
        pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return _TeacherInputs(ids, mask, pos, r_mask.to(self.device), p_ids.shape[1], r_ids.shape[1])

    @staticmethod
    def _response_logits(model, inp: _TeacherInputs) -> torch.Tensor:
        """(rows, R, V) float logits predicting the response tokens: position ``t`` sees ``[x, y_<t]``."""
        device = inp.ids.device
        if isinstance(model, torch.nn.Module):
            device = next(model.parameters(), inp.ids).device
        kw = {}
        if _keeps_logits(model):  # the LM head on the last R + 1 positions only, not on the prompt's
            kw["logits_to_keep"] = inp.R + 1
        logits = model(input_ids=inp.ids.to(device), attention_mask=inp.mask.to(device),
                       position_ids=inp.pos.to(device), use_cache=False, **kw).logits
        if kw:  # positions P - 1 ... P + R - 1 kept; the last one predicts past the response
            return logits[:, : inp.R].float()
        return logits[:, inp.P - 1: inp.P + inp.R - 1].float()

    def _logprobs_batch(self, model, prompt_ids, response_ids, requires_grad: bool) -> list[torch.Tensor]:
        R = max(len(r) for r in response_ids)
        if R == 0:
            return [torch.zeros(0, device=self.device if requires_grad else "cpu") for _ in response_ids]
        inp = self._teacher_inputs(prompt_ids, response_ids)
        logits = self._response_logits(model, inp)
        lp = torch.log_softmax(logits, dim=-1).gather(-1, inp.ids[:, inp.P:, None])[..., 0]
        lp = lp.masked_fill(~inp.r_mask, 0.0)
        if not requires_grad:
            lp = lp.cpu()
        return [lp[i, : len(r)] for i, r in enumerate(response_ids)]

    def _kl_batch(self, model, others: Sequence, prompt_ids, response_ids, requires_grad: bool,
                  with_logprobs: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(rows, M) sequential KLs to each of ``others`` and (optionally) the per-token log-probs."""
        from prefgym.llm.kl import token_kl_full

        n, M = len(response_ids), len(others)
        R = max(len(r) for r in response_ids)
        out_dev = self.device if requires_grad else torch.device("cpu")
        if R == 0:  # no response token: no state, zero KL
            return torch.zeros(n, M, device=out_dev), [torch.zeros(0, device=out_dev) for _ in range(n)]
        inp = self._teacher_inputs(prompt_ids, response_ids)
        logp = torch.log_softmax(self._response_logits(model, inp), dim=-1)  # (rows, R, V), with grad
        kls = []
        for other in others:
            with torch.no_grad():  # the frozen model: no graph, its logits freed after this chunk
                q_logp = torch.log_softmax(self._response_logits(other, inp), dim=-1).to(logp.device)
            if q_logp.shape != logp.shape:
                raise ValueError(f"the frozen model's logits have shape {tuple(q_logp.shape)} but the "
                                 f"policy's {tuple(logp.shape)}: both models must share the vocabulary")
            # 000 Sec. 3.3 sequential KL / 003 App. D: sum_t sum_s pi(s|x,y<t) log(pi/q), real tokens only
            kls.append(token_kl_full(logp, q_logp, inp.r_mask, normalized=True))
            del q_logp
        kl = torch.stack(kls, dim=-1)
        lps: list[torch.Tensor] = []
        if with_logprobs:
            lp = logp.gather(-1, inp.ids[:, inp.P:, None])[..., 0].masked_fill(~inp.r_mask, 0.0)
            if not requires_grad:
                lp = lp.cpu()
            lps = [lp[i, : len(r)] for i, r in enumerate(response_ids)]
        return (kl if requires_grad else kl.cpu()), lps

    def sequence_logprobs(
        self,
        prompts: Sequence[str | TokenIds],
        responses: Sequence[str | TokenIds],
        requires_grad: bool = False,
        reference: bool = False,
        batch_size: int | None = None,
    ) -> list[torch.Tensor]:
        """Per-token ``log pi(response | prompt)`` by one batched teacher-forced forward pass.

        The prompt is left-padded and the response right-padded; positions count
        real tokens only, as in generation, so the result matches
        :attr:`Generation.logprobs` for the same tokens. The model runs in its
        current train/eval mode (``generate`` always samples in eval mode).

        Parameters
        ----------
        prompts
            Prompt strings (encoded as in :meth:`generate`, with special tokens) or token ids.
        responses
            Response strings (encoded without special tokens) or token ids. Strings
            are re-tokenized, which can differ from the tokens that were sampled; pass
            :attr:`Generation.response_ids` for exact agreement with ``generate``.
        requires_grad
            Keep the autograd graph (tensors stay on the policy's device) for
            training losses; otherwise run under ``no_grad`` and return CPU tensors.
        reference
            Score under the reference model instead of the policy.
        batch_size
            Rows per forward pass (``None``: all at once).

        Returns
        -------
        list of Tensor
            One 1-D tensor per pair, of the response's token count.

        Raises
        ------
        ValueError
            Mismatched lengths, an empty prompt list, an empty prompt, or a prompt plus
            response longer than the context window (naming the pair and the lengths).
        """
        p_ids, r_ids = self._pairs(prompts, responses)
        if reference and self.reference_model is None:
            raise ValueError("reference=True but this policy has no reference model")
        model = self.reference_model if reference else self.model
        return self._logprobs(model, p_ids, r_ids, requires_grad=requires_grad, batch_size=batch_size)

    def _pairs(self, prompts, responses) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Validated token ids of (prompt, response) pairs (see :meth:`sequence_logprobs`)."""
        if isinstance(prompts, str) or isinstance(responses, str):
            raise TypeError("prompts and responses must be sequences; wrap a single string in a list")
        if len(prompts) != len(responses):
            raise ValueError(f"prompts and responses must have equal lengths; got {len(prompts)} and "
                             f"{len(responses)}")
        if len(prompts) == 0:
            raise ValueError("no prompts: the prompt list is empty")
        p_ids = self._as_ids(prompts, special=True, what="prompts")
        r_ids = self._as_ids(responses, special=False, what="responses")
        empty = next((i for i, p in enumerate(p_ids) if len(p) == 0), None)
        if empty is not None:
            raise ValueError(f"prompt {empty} encodes to zero tokens; a causal LM needs a token to "
                             "condition on")
        self._check_window([len(p) for p in p_ids], [len(r) for r in r_ids], "pair")
        return p_ids, r_ids

    def sequential_kl(
        self,
        prompts: Sequence[str | TokenIds],
        responses: Sequence[str | TokenIds],
        other: Any,
        requires_grad: bool = False,
        batch_size: int | None = None,
        return_logprobs: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Sequential (token-wise) KL ``sum_t KL(pi(.|[x, y_<t]) || q(.|[x, y_<t]))`` over the vocabulary.

        The estimator of both KL terms of MPO (000 Sec. 3.3, Zeng et al. 2024) and of SPO's
        global regulariser (003 App. D), on given (usually sampled) responses: one batched
        teacher-forced pass of the policy and one of each frozen model ``q`` per chunk of
        ``batch_size`` rows, the per-token KLs summed over the vocabulary from the logits
        (:func:`~prefgym.llm.kl.token_kl_full`) and over the response tokens
        (ending token included, padding excluded, exactly the tokens of
        :meth:`sequence_logprobs`). The frozen models run under ``no_grad``. Without
        ``requires_grad`` every chunk's logits are dropped after the chunk; with it, the
        backward of each chunk keeps the policy's (rows, R, V) log-probabilities and one
        (rows, R, V) log-probability tensor per frozen model until ``backward`` (the
        gradient needs both), so a pass with grad holds ``1 + M`` such tensors per row.
        The gradient flows through each per-state distribution and holds the states fixed
        (the bias 003 App. D accepts; see :mod:`prefgym.llm.kl`).

        Parameters
        ----------
        prompts, responses
            As in :meth:`sequence_logprobs` (strings or token ids; pass the sampled ids).
        other
            The frozen ``q``: an :class:`LMPolicy` (its ``model``), a causal LM module
            (e.g. ``reference_model``), or a list / tuple of them for several KLs from one
            pass of the policy. They must share the tokenizer and vocabulary; each runs on
            its own parameters' device.
        requires_grad
            Keep the policy's graph (results on the policy's device); otherwise ``no_grad``
            and CPU results.
        batch_size
            Rows per forward pass (``None``: all at once); bounds the (rows, T, V) logits in
            memory without ``requires_grad`` (with it, only the forward's peak).
        return_logprobs
            Also return the per-token log-probs of the responses from the same pass (equal
            to :meth:`sequence_logprobs`), saving a second forward pass of the policy.

        Returns
        -------
        Tensor or (Tensor, list of Tensor)
            (n,) KLs for a single ``other``, (n, M) for a list of ``M``; with
            ``return_logprobs`` also the per-token log-probs (one 1-D tensor per pair).

        Raises
        ------
        ValueError
            As :meth:`sequence_logprobs`; an empty ``other`` list; a frozen model whose
            vocabulary differs from the policy's.
        TypeError
            As :meth:`sequence_logprobs`; an ``other`` that is neither an LMPolicy nor a module (``None``).
        """
        single = not isinstance(other, list | tuple)
        others = [other] if single else list(other)
        if not others:
            raise ValueError("other is an empty list: pass at least one frozen model")
        models = [o.model if isinstance(o, LMPolicy) else o for o in others]
        if any(m is None or not callable(m) for m in models):
            bad = next(type(m).__name__ for m in models if m is None or not callable(m))
            raise TypeError(f"other must be an LMPolicy or a causal LM module (or a list of them); got {bad} "
                            "(e.g. the reference_model of a policy that has none)")
        p_ids, r_ids = self._pairs(prompts, responses)
        n = len(p_ids)
        bs = n if batch_size is None else max(1, int(batch_size))
        kls: list[torch.Tensor] = []
        lps: list[torch.Tensor] = []
        with torch.enable_grad() if requires_grad else torch.no_grad():
            for start in range(0, n, bs):
                kl, lp = self._kl_batch(self.model, models, p_ids[start:start + bs], r_ids[start:start + bs],
                                        requires_grad, return_logprobs)
                kls.append(kl)
                lps += lp
        kl = torch.cat(kls, dim=0)
        kl = kl[:, 0] if single else kl
        return (kl, lps) if return_logprobs else kl

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return (f"LMPolicy({name!r}, device={str(self.device)!r}, max_new_tokens={self.max_new_tokens}, "
                f"temperature={self.temperature}, top_p={self.top_p}, top_k={self.top_k}, "
                f"stop_strings={self.stop_strings!r}, chat_template={self.uses_chat_template}, "
                f"reference={self.reference_model is not None})")
