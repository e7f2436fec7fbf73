"""LLM-as-judge: a causal LM compares two replies through a pairwise template.

:class:`LMPairwiseJudge` fills a comparison template (placeholders ``{prompt}``,
``{response_a}``, ``{response_b}``), renders it as a user message with the tokenizer's chat
template when there is one, and reads the next-token probabilities of the two labels
(``"A"`` / ``"B"`` by default)::

    q(x, a, b) = p(label_1) / (p(label_1) + p(label_2))     (a shown first)
    P(a beats b | x) = (q(x, a, b) + 1 - q(x, b, a)) / 2

Averaging over both orders removes the judge's position bias and makes it constant-sum,
as :class:`~prefgym.judges.base.PairwiseJudge` requires. Both orders of every pair go
through the model in left-padded batches of ``batch_size`` rows, one forward pass each
(no generation). This is the judge of ``--judge lm:NAME``; like every judge it also offers
TRL's ``judge(prompts, completions)`` face (:meth:`PairwiseJudge.judge`).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

from prefgym.errors import InvalidArgumentError
from prefgym.judges.base import PairwiseJudge

__all__ = ["LMPairwiseJudge", "DEFAULT_JUDGE_TEMPLATE", "check_judge_template"]

DEFAULT_JUDGE_TEMPLATE = (
    "Which response answers the question correctly?\n\n"
    "Question: {prompt}\n\n"
    "Response A: {response_a}\n\n"
    "Response B: {response_b}\n\n"
    "Reply with one letter: A or B."
)
PLACEHOLDERS = ("prompt", "response_a", "response_b")


def check_judge_template(template: str) -> str:
    """``template`` if it holds exactly the placeholders ``{prompt}``, ``{response_a}``, ``{response_b}``.

    Raises
    ------
    InvalidArgumentError
        Not a string, unbalanced braces, a missing placeholder or an unknown one (named).
    """
    if not isinstance(template, str):
        raise InvalidArgumentError(f"template must be a string; got {type(template).__name__}")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise InvalidArgumentError(f"template is not a valid format string ({exc}); write literal braces "
                                   "as {{ and }}") from None
    missing = [p for p in PLACEHOLDERS if p not in fields]
    if missing:
        raise InvalidArgumentError(f"the judge template lacks the placeholder(s) "
                                   f"{', '.join('{' + m + '}' for m in missing)}; it must hold "
                                   "{prompt}, {response_a} and {response_b}")
    unknown = sorted(fields - set(PLACEHOLDERS))
    if unknown:
        raise InvalidArgumentError(f"the judge template has unknown placeholder(s) {unknown}; allowed: "
                                   f"{list(PLACEHOLDERS)} (write literal braces as {{{{ and }}}})")
    return template


class LMPairwiseJudge(PairwiseJudge):
    """A causal LM as a pairwise judge, from the next-token probabilities of two labels.

    Parameters
    ----------
    model, tokenizer
        Any ``transformers`` causal LM and its tokenizer (see :meth:`from_pretrained`).
    template
        Comparison prompt with ``{prompt}``, ``{response_a}``, ``{response_b}``
        (:data:`DEFAULT_JUDGE_TEMPLATE`); checked at construction.
    labels
        The two answers, each one token: ``("A", "B")`` (default) or ``("1", "2")`` with a
        template that asks for them.
    batch_size
        Rows (pair orders) per forward pass.
    chat_template
        Render the filled template as a user turn with the tokenizer's chat template:
        ``None`` when it has one, ``True`` / ``False`` to force.
    device
        Where the model runs.

    Raises
    ------
    InvalidArgumentError
        A bad template, labels that are not two distinct single tokens, or (when judging)
        a filled template longer than the model's context window.
    """

    def __init__(self, model, tokenizer, template: str = DEFAULT_JUDGE_TEMPLATE,
                 labels: Sequence[str] = ("A", "B"), batch_size: int = 16, chat_template: bool | None = None,
                 device: str | None = None):
        import torch

        from prefgym.llm.chat import has_chat_template

        self.template = check_judge_template(template)
        labels = tuple(labels)
        if len(labels) != 2 or labels[0] == labels[1] or not all(isinstance(x, str) and x for x in labels):
            raise InvalidArgumentError(f"labels must be two distinct non-empty strings; got {labels!r}")
        ids = []
        for lab in labels:
            enc = tokenizer(lab, add_special_tokens=False)["input_ids"]
            if len(enc) != 1:
                raise InvalidArgumentError(f"label {lab!r} encodes to {len(enc)} tokens; each label must "
                                           "be one token (try 'A'/'B' or '1'/'2')")
            ids.append(int(enc[0]))
        self.labels, self.label_ids = labels, tuple(ids)
        if int(batch_size) < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1; got {batch_size}")
        self.batch_size = int(batch_size)
        if chat_template and not has_chat_template(tokenizer):
            raise InvalidArgumentError("chat_template=True but the tokenizer has no chat template")
        self.use_chat = has_chat_template(tokenizer) if chat_template is None else bool(chat_template)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_token_id = int(pad or 0)
        from prefgym.llm.policy import LMPolicy

        self.max_positions = LMPolicy._max_positions(model.config)
        import inspect

        self._keep_last = "logits_to_keep" in inspect.signature(type(model).forward).parameters

    @classmethod
    def from_pretrained(cls, name_or_path, cache: str | None = None, **kwargs) -> LMPairwiseJudge:
        """A judge on :func:`~prefgym.llm.pretrained.load_pretrained`'s model (name, GGUF file or folder)."""
        from prefgym.llm.pretrained import load_pretrained

        model, tok = load_pretrained(name_or_path, cache)
        return cls(model, tok, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return f"LMPairwiseJudge({name!r}, labels={self.labels}, batch_size={self.batch_size})"

    # ------------------------------------------------------------------ scoring
    def render(self, context: str, first: str, second: str) -> str:
        """The text the judge model reads for one order of a pair."""
        from prefgym.llm.chat import render_prompt

        filled = self.template.format(prompt=context, response_a=first, response_b=second)
        return render_prompt(self.tokenizer, filled, self.use_chat)[0] if self.use_chat else filled

    def _encode(self, texts: list[str], contexts: Sequence[str]) -> list[list[int]]:
        special = not self.use_chat  # a rendered chat template already holds its special tokens
        enc = [self.tokenizer(t, add_special_tokens=special)["input_ids"] for t in texts]
        if self.max_positions is not None:
            for i, e in enumerate(enc):
                if len(e) > self.max_positions:
                    raise InvalidArgumentError(
                        f"the judge prompt for context {contexts[i][:60]!r} has {len(e)} tokens, more than "
                        "the "
                        f"judge model's context window of {self.max_positions}; shorten the prompt or the "
                        "replies (nothing is truncated silently)")
        return enc

    def first_label_probs(self, contexts: Sequence[str], first: Sequence[str],
                          second: Sequence[str]) -> np.ndarray:
        """``p(label_1) / (p(label_1) + p(label_2))`` with ``first`` shown as response A; shape ``(n,)``."""
        import torch

        enc = self._encode([self.render(c, a, b) for c, a, b in zip(contexts, first, second, strict=True)],
                           contexts)
        out = np.empty(len(enc))
        lab = torch.tensor(self.label_ids, device=self.device)
        order = np.argsort([len(e) for e in enc])  # similar lengths per batch: less padding
        with torch.no_grad():
            for s in range(0, len(enc), self.batch_size):
                rows = order[s:s + self.batch_size]
                width = max(len(enc[r]) for r in rows)
                ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for j, r in enumerate(rows):
                    ids[j, width - len(enc[r]):] = torch.tensor(enc[r])
                    mask[j, width - len(enc[r]):] = 1
                pos = (mask.cumsum(1) - 1).clamp(min=0)
                kw = dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                          position_ids=pos.to(self.device), use_cache=False)
                if self._keep_last:  # only the last position's logits: skips a (rows, T, V) projection
                    kw["logits_to_keep"] = 1
                logits = self.model(**kw).logits[:, -1].float()
                two = torch.log_softmax(logits[:, lab], dim=-1)[:, 0].exp()
                out[rows] = two.cpu().numpy()
        return out

    def _prob(self, contexts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        n = len(contexts)
        q = self.first_label_probs(contexts * 2, responses_a + responses_b, responses_b + responses_a)
        return np.clip(0.5 * (q[:n] + 1.0 - q[n:]), 0.0, 1.0)  # both orders: no position bias
