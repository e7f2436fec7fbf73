"""A language model restricted to a finite menu of responses.

:class:`MenuPolicy` turns an :class:`~prefgym.llm.policy.LMPolicy` into a policy over
``N`` fixed responses ``y_1..y_N``: for a prompt ``x``

``pi_theta(y_i | x) = pi_LM(y_i | x) / sum_j pi_LM(y_j | x) = softmax_i(log pi_LM(y_i | x))``,

the LM's sequence probabilities (sum of token log-probs, teacher forced, EOS appended
by default so that ``y_i`` is a *complete* reply) renormalised over the menu. The menu
game is then a matrix game whose strategies are parametrised by a transformer: every
response can be enumerated, so win rates ``P(y > pi)`` and the duality gap of the
policy are exact (:mod:`prefgym.evaluation`), and the losses of
:mod:`prefgym.agents.llm.losses` can be taken as exact expectations (``weights = pi_t``)
or on samples drawn from the menu distribution.

All menu log-probabilities come from one batched teacher-forced pass over the
``B x N`` (prompt, response) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["MenuPolicy"]


class MenuPolicy:
    """An LM policy over ``N`` fixed responses: ``softmax`` of their sequence log-probs.

    Parameters
    ----------
    policy
        The :class:`~prefgym.llm.policy.LMPolicy` whose model is trained.
    responses
        The menu, ``N >= 2`` distinct strings.
    append_eos
        Score ``y_i + EOS`` (the probability of replying exactly ``y_i``), if the
        tokenizer has an EOS token. Default ``True``.
    batch_size
        Rows per teacher-forced forward pass (``None``: all ``B x N`` at once).

    Attributes
    ----------
    response_ids
        The token ids scored for each response (1-D ``LongTensor`` each).
    """

    def __init__(self, policy, responses: Sequence[str], append_eos: bool = True,
                 batch_size: int | None = None):
        if isinstance(responses, str):
            raise TypeError("responses must be a sequence of strings, not one string")
        responses = list(responses)
        if len(responses) < 2:
            raise ValueError(f"a menu needs at least 2 responses; got {len(responses)}")
        bad = next((i for i, r in enumerate(responses) if not isinstance(r, str) or not r), None)
        if bad is not None:
            raise ValueError(f"responses[{bad}] must be a non-empty string; got {responses[bad]!r}")
        if len(set(responses)) != len(responses):
            raise ValueError("menu responses must be distinct")
        self.policy = policy
        self.responses = responses
        self.append_eos = bool(append_eos)
        self.batch_size = batch_size
        tok = policy.tokenizer
        enc = tok(responses, add_special_tokens=False)["input_ids"]
        eos = list(policy.eos_token_ids[:1]) if (append_eos and policy.eos_token_ids) else []
        self.response_ids = [torch.tensor(list(e) + eos, dtype=torch.long) for e in enc]
        if any(len(r) == 0 for r in self.response_ids):
            raise ValueError("a menu response encodes to zero tokens")

    # ------------------------------------------------------------ properties
    @property
    def n(self) -> int:
        """Menu size ``N``."""
        return len(self.responses)

    @property
    def tokenizer(self):
        return self.policy.tokenizer

    @property
    def model(self):
        return self.policy.model

    def __repr__(self) -> str:
        return f"MenuPolicy(n={self.n}, append_eos={self.append_eos}, policy={self.policy!r})"

    # ------------------------------------------------------------ log-probs
    def sequence_logprobs(self, prompts: Sequence[str], requires_grad: bool = False,
                          policy=None, reference: bool = False) -> Tensor:
        """``log pi^LM(y_i | x_b)`` for every prompt and menu item, shape ``(B, N)``.

        Parameters
        ----------
        prompts
            ``B`` prompt strings.
        requires_grad
            Keep the graph (for a loss); otherwise ``no_grad`` and a CPU tensor.
        policy
            Score under another :class:`~prefgym.llm.policy.LMPolicy` sharing the
            tokenizer (a frozen snapshot: magnet, previous iterate); default ``self.policy``.
        reference
            Score under the policy's reference model.
        """
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings; wrap a single prompt in a list")
        prompts = list(prompts)
        pol = self.policy if policy is None else policy
        n = self.n
        rows_p = [p for p in prompts for _ in range(n)]
        rows_r = [r for _ in prompts for r in self.response_ids]
        lps = pol.sequence_logprobs(rows_p, rows_r, requires_grad=requires_grad, reference=reference,
                                    batch_size=self.batch_size)
        return torch.stack([lp.sum() for lp in lps]).reshape(len(prompts), n)

    def log_probs(self, prompts: Sequence[str], requires_grad: bool = False, policy=None,
                  reference: bool = False) -> Tensor:
        """Menu log-probabilities ``log pi(y_i | x_b)`` (``log_softmax`` over the menu), ``(B, N)``."""
        return torch.log_softmax(self.sequence_logprobs(prompts, requires_grad, policy, reference), dim=-1)

    def probs(self, prompts: Sequence[str], policy=None, reference: bool = False) -> np.ndarray:
        """Menu probabilities ``(B, N)`` as a float64 array (rows sum to 1)."""
        p = self.log_probs(prompts, policy=policy, reference=reference).double().exp().numpy()
        return p / p.sum(axis=-1, keepdims=True)

    def distribution(self, prompt: str) -> dict[str, float]:
        """``{response: probability}`` for one prompt (as :func:`~prefgym.judges.exact_win_rate` takes it)."""
        return dict(zip(self.responses, self.probs([prompt])[0].tolist(), strict=True))

    # ------------------------------------------------------------- sampling
    def sample(self, prompts: Sequence[str], k: int = 1, generator: torch.Generator | None = None,
               log_probs: Tensor | None = None) -> Tensor:
        """``k`` menu indices per prompt drawn from ``pi(. | x)`` (with replacement), ``(B, k)`` long.

        ``generator`` seeds the draw; ``log_probs`` (B, N) skips the forward pass.
        """
        lp = self.log_probs(prompts) if log_probs is None else log_probs.detach()
        return torch.multinomial(lp.double().exp(), int(k), replacement=True, generator=generator)

    def generate_text(self, prompts: Sequence[str], rng: np.random.Generator | None = None) -> list[str]:
        """One sampled menu response per prompt (the :class:`~prefgym.llm.base.TextGenerator` API)."""
        gen = None
        if rng is not None:
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        idx = self.sample(prompts, 1, generator=gen)[:, 0].tolist()
        return [self.responses[i] for i in idx]
