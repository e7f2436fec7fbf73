"""Chat messages as prompts: checking them, rendering them with a tokenizer's chat template, plain text.

A prompt is either a raw string or a conversation: a list of ``{"role", "content"}``
dicts (roles ``system``, ``user``, ``assistant``), the format of ``transformers``' chat
templates and of TRL's conversational datasets. A policy renders both with the
tokenizer's chat template when it has one (a raw string becomes one user message);
judges see :func:`prompt_text`, the plain text of the conversation.

The dialogue environment's observations are strings (a Gymnasium ``Text`` space):
:func:`chat_formatter` renders its turns with a tokenizer's chat template, for a chat
policy built with ``chat_template=False`` (the observation is already rendered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prefgym.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["Messages", "Prompt", "chat_formatter", "check_prompt", "dialogue_messages", "has_chat_template",
           "is_messages", "prompt_text", "render_prompt"]

Messages = list[dict[str, str]]
Prompt = str | Messages
ROLES = ("system", "user", "assistant")


def is_messages(x: Any) -> bool:
    """Whether ``x`` looks like a conversation (a non-string sequence of mappings)."""
    return isinstance(x, Sequence) and not isinstance(x, str | bytes) and len(x) > 0 and \
        all(isinstance(m, Mapping) for m in x)


def check_prompt(x: Any, where: str = "prompt") -> Prompt:
    """``x`` if it is a string or a well-formed conversation, else a clear error.

    Raises
    ------
    InvalidTypeError
        Neither a string nor a list/tuple (naming ``where`` and the type found).
    InvalidArgumentError
        A list that is not of ``{"role", "content"}`` dicts with known roles and string
        contents (naming ``where``, the message index and what is allowed).
    """
    if isinstance(x, str):
        return x
    if not isinstance(x, list | tuple):
        raise InvalidTypeError(f"{where} must be a string or a non-empty list of {{'role', 'content'}} "
                               f"dicts; got {type(x).__name__}")
    if not is_messages(x):
        raise InvalidArgumentError(f"{where} must be a string or a non-empty list of {{'role', 'content'}} "
                                   f"dicts; got {type(x).__name__}")
    out = []
    for i, m in enumerate(x):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise InvalidArgumentError(f"{where}[{i}]: role must be one of {ROLES}; got {role!r}")
        if not isinstance(content, str):
            raise InvalidArgumentError(f"{where}[{i}]: content must be a string; got "
                                       f"{type(content).__name__}")
        out.append({"role": role, "content": content})
    return out


def prompt_text(x: Prompt) -> str:
    """Plain text of a prompt for judges: a string as is, a single user message its content,
    otherwise ``"Role: content"`` lines (:func:`~prefgym.llm.base.format_dialogue`'s style)."""
    if isinstance(x, str):
        return x
    msgs = check_prompt(x)
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        return msgs[0]["content"]
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs)


def has_chat_template(tokenizer) -> bool:
    """Whether ``tokenizer`` carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, x: Prompt, use_template: bool = True) -> tuple[str, bool]:
    """``(text, rendered)``: ``x`` through the chat template (with the assistant turn opened), or as is.

    A string is one user message. Without a template (or with ``use_template=False``) a
    string stays unchanged and a conversation becomes ``"User: ...\\nAssistant:"`` plain
    text. ``rendered`` says whether the template was applied (the text then already holds
    the special tokens the model expects, so it is encoded without adding more).
    """
    if use_template and has_chat_template(tokenizer):
        msgs = [{"role": "user", "content": x}] if isinstance(x, str) else check_prompt(x)
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return text, True
    if isinstance(x, str):
        return x, False
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in check_prompt(x)]
    return "\n".join([*lines, "Assistant:"]), False


def dialogue_messages(turns: Sequence[tuple[str, str | None]]) -> Messages:
    """``[(user, reply), ..., (user, None)]`` as chat messages (a last ``None`` reply is left out)."""
    msgs: Messages = []
    for user, reply in turns:
        msgs.append({"role": "user", "content": user})
        if reply is not None:
            msgs.append({"role": "assistant", "content": reply})
    return msgs


def chat_formatter(tokenizer, system: str | None = None):
    """A ``formatter`` for :class:`~prefgym.envs.dialogue.DialogueGame`: turns through the chat template.

    An open last turn (reply ``None``) ends with the template's assistant header. Use it with a
    policy that does not render again (``LMPolicy(..., chat_template=False)``).
    """
    if not has_chat_template(tokenizer):
        raise InvalidArgumentError("chat_formatter needs a tokenizer with a chat template")

    def formatter(turns: Sequence[tuple[str, str | None]]) -> str:
        msgs = ([{"role": "system", "content": system}] if system else []) + dialogue_messages(turns)
        open_turn = bool(turns) and turns[-1][1] is None
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=open_turn)

    return formatter
