"""Models on disk and in memory for the self-play trainers: views, LoRA adapters, checkpoint I/O.

:func:`policy_view` wraps a frozen model (previous iterate, magnet, reference) in an
:class:`~prefgym.llm.policy.LMPolicy` with the trained policy's settings;
:func:`apply_lora` adds ``peft`` adapters; the private helpers read and write the weights of
a checkpoint folder (full models with ``save_pretrained``, adapters only for a LoRA run).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from prefgym.agents.llm.menu import MenuPolicy

__all__ = ["policy_view", "apply_lora"]


def policy_view(policy, model):
    """An :class:`~prefgym.llm.policy.LMPolicy` on ``model`` with ``policy``'s tokenizer and settings.

    Used for the frozen snapshots (previous iterate, magnet) and for sampling from the
    reference model. No weights are copied.
    """
    from prefgym.llm.policy import LMPolicy

    view = LMPolicy(model, policy.tokenizer, device=policy.device, max_new_tokens=policy.max_new_tokens,
                    temperature=policy.temperature, top_p=policy.top_p, top_k=policy.top_k,
                    stop_strings=policy.stop_strings or None,
                    chat_template=getattr(policy, "chat_template", None))
    view.eos_token_ids, view.pad_token_id = policy.eos_token_ids, policy.pad_token_id
    return view


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def apply_lora(model, lora: dict[str, Any]):
    """Wrap ``model`` with ``peft.get_peft_model(model, LoraConfig(**lora))``: only the adapters train.

    ``lora`` holds :class:`peft.LoraConfig` keyword arguments (``r``, ``lora_alpha``,
    ``target_modules``, ...); ``task_type`` defaults to ``"CAUSAL_LM"``. The base weights
    are frozen in place. Needs the ``peft`` package.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("lora=... needs the peft package (pip install peft)") from err
    if _is_peft(model):
        raise ValueError("the policy model is already a peft model; pass its base model with lora=...")
    return get_peft_model(model, LoraConfig(**{"task_type": "CAUSAL_LM", **dict(lora)}))




@contextlib.contextmanager
def _quiet():
    """Silence ``transformers``' per-file progress bars while checkpoints are written or read."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _load_weights(model, folder: Path) -> None:
    if _is_peft(model):  # adapters only: load them onto the (frozen) base weights
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        result = set_peft_model_state_dict(model, load_peft_weights(str(folder), device="cpu"))
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"{folder}: adapter weights do not fit the model: {result.unexpected_keys[:5]}")
        return
    with _quiet():
        loaded = type(model).from_pretrained(folder)
    model.load_state_dict(loaded.state_dict())


def _build_policy(folder: Path, settings: dict[str, Any], device):
    from prefgym.llm.policy import LMPolicy

    ref = next((p for p in (folder / "reference", folder.parent / "reference") if p.exists()), None)
    kw = {k: settings[k] for k in ("max_new_tokens", "temperature", "top_p", "top_k")}
    kw["stop_strings"] = tuple(settings["stop_strings"]) or None
    kw["chat_template"] = settings.get("chat_template")
    if device is not None:
        kw["device"] = device
    with _quiet():
        lm = LMPolicy.from_pretrained(folder / "policy", reference=ref, **kw)
    if settings.get("menu"):
        return MenuPolicy(lm, settings["menu"]["responses"], append_eos=settings["menu"]["append_eos"])
    return lm
