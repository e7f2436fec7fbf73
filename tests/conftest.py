"""Fixtures shared by the test files: one torch thread, the tiny GPT-2 of the LLM tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """Run the test on one torch thread (stable timings, no oversubscription on 2 cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny():
    """``(model, tokenizer)``: a random 1-layer GPT-2 of width 32 built from its config (seed 0)."""
    from prefgym.llm.tiny import tiny_lm

    return tiny_lm(n_layer=1, n_embd=32, n_head=2, seed=0)
