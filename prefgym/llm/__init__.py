"""Language-model plumbing: policies, tiny models, batched generation."""

from prefgym.llm.base import ASSISTANT, USER, TextGenerator, format_dialogue

__all__ = ["ASSISTANT", "USER", "TextGenerator", "format_dialogue"]
