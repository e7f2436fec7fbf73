"""Neural (``transformers``) counterparts of the tabular agents.

The update rules of :mod:`prefgym.agents.rules` become losses on sequence (or
token) log-probabilities of a causal LM policy; they live in
:mod:`prefgym.agents.llm.losses`. The self-play training loop that samples
responses, queries a judge and calls these losses is built on top of them.
"""

from prefgym.agents.llm import losses

__all__ = ["losses"]
