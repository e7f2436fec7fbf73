"""Neural (``transformers``) counterparts of the tabular agents.

The update rules of :mod:`prefgym.agents.rules` become losses on sequence (or
token) log-probabilities of a causal LM policy (:mod:`prefgym.agents.llm.losses`).
:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` is the shared iterative
self-play loop that samples responses, queries a judge and calls them; the
algorithms (:mod:`prefgym.agents.llm.algorithms`) say how each builds its
iteration's data. :class:`~prefgym.agents.llm.menu.MenuPolicy` restricts an LM to a
finite menu of responses, where win rates and duality gaps are exact.

``LLM_AGENTS`` (name -> trainer class) is kept apart from
:data:`prefgym.agents.AGENTS`, whose agents all play matrix games.

Everything here needs torch and transformers (``pip install 'prefgym[llm]'``). The names
are loaded on first access, so importing this package (or the torch-free
:mod:`prefgym.llm_tasks`) imports no torch; without the ``llm`` extra, accessing a
name raises :class:`~prefgym.errors.MissingExtraError` in one line.
:data:`LLM_AGENT_SUMMARIES` describes the trainers without importing them (``prefgym list``).
"""

from __future__ import annotations

from importlib import import_module

#: ``LLM_AGENTS`` key -> (trainer class name, one line on its algorithm); torch-free, for
#: ``prefgym list`` (a test checks it against ``LLM_AGENTS``)
LLM_AGENT_SUMMARIES: dict[str, tuple[str, str]] = {
    "omwu": ("OMWUTrainer", "Neural OMWU (002 Sec. 5.2): generalised IPO on all pairs of the group, "
                            "base sg log pi_t."),
    "ompo": ("OMPOTrainer", "OMPO practical regression (001 Alg. 2) at the states of the batch."),
    "sppo": ("SPPOTrainer", "SPPO (Wu et al. 2024; 002 App. D.2): regress log pi/pi_t on "
                            "eta (P(y > pi_t) - 1/2)."),
    "mpo": ("MPOTrainer", "Magnetic Preference Optimization (000 Alg. 1, App. A.1)."),
    "nash_md": ("NashMDTrainer", "Nash-MD (Munos et al. 2023) as a regularised generalised IPO loss."),
    "spo": ("SPOTrainer", "Self-play SPO (003): the pairwise loss L_pref^{alpha, mu} on all pairs of the "
                          "group."),
    "dpo": ("DPOTrainer", "Iterative DPO on best-vs-worst pairs (001 App. B.3, the baseline of 001 and "
                          "002)."),
    "ipo": ("IPOTrainer", "Iterative IPO (Azar et al. 2023, Eq. 17) on the best-vs-worst pairs of "
                          "DPOAlgorithm."),
    "slic_hf": ("SLiCHFTrainer", "SLiC-HF (Zhao et al. 2023; 003 App. E.2) on the best-vs-worst pairs of "
                                 "DPOAlgorithm."),
    "aihf_dpo": ("AIHFDPOTrainer", "AIHF's policy-only variants (004 Sec. 3.3) on the self-play loop: "
                                   "AIHF-DPO and Self-Play AIHF."),
}

_ALGORITHMS = ("ALGORITHMS", "AIHFAlgorithm", "DPOAlgorithm", "IPOAlgorithm", "MPOAlgorithm",
               "NashMDAlgorithm", "OMPOAlgorithm", "OMWUAlgorithm", "SelfPlayAlgorithm", "SelfPlayBatch",
               "SLiCHFAlgorithm", "SPOAlgorithm", "SPPOAlgorithm")
_TRAINER = ("LLM_AGENTS", "AIHFDPOTrainer", "DPOTrainer", "IPOTrainer", "MenuResponses", "MPOTrainer",
            "NashMDTrainer", "OMPOTrainer", "OMWUTrainer", "ResponseSource", "SampledResponses",
            "SelfPlayTrainer", "SLiCHFTrainer", "SPOTrainer", "SPPOTrainer", "apply_lora")
#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(_ALGORITHMS, "prefgym.agents.llm.algorithms"),
    **dict.fromkeys(_TRAINER, "prefgym.agents.llm.trainer"),
    "MenuPolicy": "prefgym.agents.llm.menu",
    "SelfPlayConfig": "prefgym.agents.llm.config",
    "losses": "prefgym.agents.llm.losses",
}


def __getattr__(name: str):
    if name in _LAZY:
        from prefgym.optional import require

        require("torch", extra="llm", purpose=f"prefgym.agents.llm.{name} needs torch")
        module = import_module(_LAZY[name])
        value = module if name == "losses" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["LLM_AGENT_SUMMARIES", *sorted(_LAZY)]
