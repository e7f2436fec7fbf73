"""The multi-turn menu problem (moved): see :mod:`prefgym.data.multiturn` and :mod:`prefgym.games.multiturn`.

Kept so that ``from prefgym.agents.llm.multiturn.problem import MultiTurnMenuProblem`` still works.
"""

from prefgym.data.multiturn import ACKNOWLEDGEMENTS, UNSURE, MultiTurnMenuProblem, dialogue_turn_menu

__all__ = ["ACKNOWLEDGEMENTS", "UNSURE", "MultiTurnMenuProblem", "dialogue_turn_menu"]
