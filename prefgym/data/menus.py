"""The fixed menu tasks: prompts, response menus and the games or rewards that judge them.

Shared by the ``llm-menu`` and ``llm-spo`` reproductions and the CLI's ``menu`` and
``bt-menu`` tasks (:mod:`prefgym.llm_tasks`), so that both read the same data from the
data layer.
"""

from __future__ import annotations

import numpy as np

from prefgym.games.matrix import MatrixGame, planted_nash

__all__ = [
    "MENU_PROMPTS",
    "MENU_RESPONSES",
    "MENU_GAME_RANK",
    "MENU_GAME_MIN_NE_PROB",
    "planted_menu_game",
    "BT_MENU_RESPONSES",
    "BT_MENU_REWARDS",
    "bt_menu_target",
]

#: the four prompts of every menu task
MENU_PROMPTS = ("User: hi\nAssistant:", "User: bye\nAssistant:", "User: name a fruit\nAssistant:",
                "User: how are you?\nAssistant:")
#: ``llm-menu``'s three responses, judged by :func:`planted_menu_game`
MENU_RESPONSES = ("goodbye!", "hello there.", "I am fine.")
#: ``llm-spo``'s five responses and their Bradley-Terry rewards
BT_MENU_RESPONSES = ("goodbye!", "you are welcome.", "hello there.", "I am fine.", "sure.")
BT_MENU_REWARDS = (1.0, 0.5, 0.0, -0.5, -1.0)
#: rank of the planted game and the least NE probability the chosen seed must give every response
MENU_GAME_RANK, MENU_GAME_MIN_NE_PROB = 1, 0.1


def planted_menu_game(max_seed: int = 100) -> tuple[MatrixGame, int, np.ndarray]:
    """``planted_nash(3, 1, seed)`` for the first seed whose NE has ``min pi* >= 0.1``; (game, seed, NE)."""
    for seed in range(max_seed):
        game = planted_nash(len(MENU_RESPONSES), rank=MENU_GAME_RANK, seed=seed)
        ne = game.nash_equilibrium()
        if ne.min() >= MENU_GAME_MIN_NE_PROB:
            return game, seed, ne
    raise RuntimeError("no planted game met the rule")  # pragma: no cover


def bt_menu_target(alpha: float) -> np.ndarray:
    """``Softmax(r / alpha)`` over :data:`BT_MENU_REWARDS` (003 Thm 1's fixed point)."""
    z = np.asarray(BT_MENU_REWARDS) / alpha
    e = np.exp(z - z.max())
    return e / e.sum()
