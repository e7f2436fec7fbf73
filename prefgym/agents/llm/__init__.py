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
"""

from prefgym.agents.llm import losses
from prefgym.agents.llm.algorithms import (
    ALGORITHMS,
    AIHFAlgorithm,
    DPOAlgorithm,
    IPOAlgorithm,
    MPOAlgorithm,
    NashMDAlgorithm,
    OMPOAlgorithm,
    OMWUAlgorithm,
    SelfPlayAlgorithm,
    SelfPlayBatch,
    SPOAlgorithm,
    SPPOAlgorithm,
)
from prefgym.agents.llm.menu import MenuPolicy
from prefgym.agents.llm.trainer import (
    LLM_AGENTS,
    AIHFDPOTrainer,
    DPOTrainer,
    IPOTrainer,
    MenuResponses,
    MPOTrainer,
    NashMDTrainer,
    OMPOTrainer,
    OMWUTrainer,
    ResponseSource,
    SampledResponses,
    SelfPlayTrainer,
    SPOTrainer,
    SPPOTrainer,
    apply_lora,
)

__all__ = [
    "AIHFAlgorithm",
    "AIHFDPOTrainer",
    "ALGORITHMS",
    "DPOAlgorithm",
    "DPOTrainer",
    "IPOAlgorithm",
    "IPOTrainer",
    "LLM_AGENTS",
    "MPOAlgorithm",
    "MPOTrainer",
    "MenuPolicy",
    "MenuResponses",
    "NashMDAlgorithm",
    "NashMDTrainer",
    "OMPOAlgorithm",
    "OMPOTrainer",
    "OMWUAlgorithm",
    "OMWUTrainer",
    "ResponseSource",
    "SPOAlgorithm",
    "SPOTrainer",
    "SPPOAlgorithm",
    "SPPOTrainer",
    "SampledResponses",
    "SelfPlayAlgorithm",
    "SelfPlayBatch",
    "SelfPlayTrainer",
    "apply_lora",
    "losses",
]
