"""The KL estimators, defined in :mod:`prefgym.llm.kl` (re-exported here)."""

from prefgym.llm.kl import sequence_kl, token_kl, token_kl_full

__all__ = ["sequence_kl", "token_kl", "token_kl_full"]
