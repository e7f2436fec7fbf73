"""Language-model plumbing: policies, tiny models, batched generation.

``LMPolicy``, ``Generation``, ``tiny_lm`` and the sampling utilities are loaded
lazily on first access, so importing :mod:`prefgym.llm` (for
:class:`TextGenerator` or :func:`format_dialogue`) does not import
``transformers``.
"""

from importlib import import_module

from prefgym.llm.base import ASSISTANT, USER, TextGenerator, format_dialogue

_LAZY = {
    "LMPolicy": "prefgym.llm.policy",
    "Generation": "prefgym.llm.policy",
    "tiny_lm": "prefgym.llm.tiny",
    "train_tokenizer": "prefgym.llm.tiny",
    "default_corpus": "prefgym.llm.tiny",
    "sample_k": "prefgym.llm.sampling",
    "win_rate_matrix": "prefgym.llm.sampling",
    "win_rate_matrices": "prefgym.llm.sampling",
    "average_win_rates": "prefgym.llm.sampling",
    "best_and_worst": "prefgym.llm.sampling",
    "best_and_worst_batch": "prefgym.llm.sampling",
    "load_prompts": "prefgym.llm.sampling",
}

__all__ = ["ASSISTANT", "USER", "TextGenerator", "format_dialogue", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        from prefgym.optional import require

        require("torch", extra="llm", purpose=f"prefgym.llm.{name} needs torch")
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
