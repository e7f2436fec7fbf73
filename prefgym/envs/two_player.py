"""The PettingZoo plumbing every two-player prefgym parallel env shares.

:class:`TwoPlayerParallelEnv` holds ``player_0`` and ``player_1``, one
observation and one action space each (independent copies of the given
spaces, so seeding one player's space leaves the other's alone), the
per-agent space accessors and the env's seeded ``np_random``.
"""

from __future__ import annotations

import copy

from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from prefgym.validation import check_seed

PLAYERS: tuple[str, str] = ("player_0", "player_1")


class TwoPlayerParallelEnv(ParallelEnv):
    """Base of the two-player parallel envs: agents, spaces and the seeded RNG."""

    def _init_players(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Set ``possible_agents``, empty ``agents``, both players' spaces and an unseeded ``np_random``."""
        self.possible_agents = list(PLAYERS)
        self.agents: list[str] = []
        self.observation_spaces = {a: copy.deepcopy(observation_space) for a in self.possible_agents}
        self.action_spaces = {a: copy.deepcopy(action_space) for a in self.possible_agents}
        self.np_random, self.np_random_seed = seeding.np_random()

    def _reseed(self, seed: int | None) -> None:
        """Re-seed ``np_random`` from ``seed`` (checked); ``None`` keeps the current stream."""
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(check_seed(seed))

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]
