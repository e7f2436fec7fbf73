"""What language-game environments need from a policy: text in, text out.

A :class:`TextGenerator` maps a batch of prompts to one reply each. The
transformers-backed :class:`~prefgym.llm.policy.LMPolicy` implements it, and
so can any scripted or rule-based responder, so environments and tests do not
depend on a model being loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["TextGenerator", "format_dialogue", "USER", "ASSISTANT"]

USER, ASSISTANT = "User", "Assistant"


@runtime_checkable
class TextGenerator(Protocol):
    """Anything that answers a batch of prompts with one reply each."""

    def generate_text(self, prompts: Sequence[str], rng: np.random.Generator | None = None) -> list[str]:
        """One reply per prompt (sampled with ``rng`` where the generator is stochastic)."""
        ...


def format_dialogue(turns: Sequence[tuple[str, str | None]]) -> str:
    """Render ``[(user, assistant), ...]`` as plain text.

    A last ``None`` reply leaves the assistant turn open.

    ``format_dialogue([("hi", "hello"), ("2+2?", None)])`` gives
    ``"User: hi\\nAssistant: hello\\nUser: 2+2?\\nAssistant:"``. A plain format is
    used so tiny models with no chat template work; users of chat models can pass
    their own formatter to the environments.
    """
    lines: list[str] = []
    for user, reply in turns:
        lines.append(f"{USER}: {user}")
        lines.append(f"{ASSISTANT}:" if reply is None else f"{ASSISTANT}: {reply}")
    return "\n".join(lines)
