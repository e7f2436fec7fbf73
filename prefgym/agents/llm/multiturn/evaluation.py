"""Exact evaluation of a policy on a multi-turn menu problem: all ``N^H`` episodes enumerated."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from prefgym.agents.llm.multiturn.problem import MultiTurnMenuProblem
from prefgym.agents.llm.multiturn.source import menu_log_probs


def trajectory_distributions(policy, problem: MultiTurnMenuProblem,
                             batch_size: int | None = None) -> np.ndarray:
    """Probabilities of all ``N^H`` episodes of every task, ``(tasks, N^H)`` float64.

    Episode ``j`` is ``problem.trajectories(i)[j]``: it picks menu item ``digits_N(j)[h-1]`` at
    turn ``h`` (most significant first) of the menu of the state its own earlier replies reach.
    Level ``h`` scores the ``N^(h-1)`` prefixes of every task in one batched pass.
    """
    N, H, T = problem.n, problem.horizon, len(problem)
    cache: dict[str, Tensor] = {}
    prefixes: list[list[tuple[str, ...]]] = [[()] for _ in range(T)]
    logp = np.zeros((T, 1))
    for _h in range(1, H + 1):
        states = [problem.state(i, pre) for i in range(T) for pre in prefixes[i]]
        menus = [problem.menu_at(i, pre) for i in range(T) for pre in prefixes[i]]
        lp = menu_log_probs(policy, states, menus, cache=cache, batch_size=batch_size,
                            prefixes=[problem.reply_prefix(s) for s in states]).double().numpy()
        logp = (logp[:, :, None] + lp.reshape(T, -1, N)).reshape(T, -1)
        prefixes = [[(*pre, y) for pre in prefixes[i] for y in problem.menu_at(i, pre)] for i in range(T)]
    p = np.exp(logp)
    return p / p.sum(-1, keepdims=True)


def trajectory_win_matrices(problem: MultiTurnMenuProblem, judge) -> np.ndarray:
    """``P(episode a > episode b)`` for every task under a whole-episode judge, ``(tasks, N^H, N^H)``.

    ``judge`` compares closed transcripts of all ``H`` turns in the context ``problem.context(i, H)``
    (e.g. ``DialogueTaskJudge(tasks, scope="all")``, or ``FinalAnswerJudge`` for reasoning).
    """
    H = problem.horizon
    out = []
    for i in range(len(problem)):
        texts = [problem.transcript(i, path) for path in problem.trajectories(i)]
        M = len(texts)
        a = [texts[x] for x in range(M) for _ in range(M)]
        b = [texts[y] for _ in range(M) for y in range(M)]
        out.append(np.asarray(judge.prob([problem.context(i, H)] * len(a), a, b)).reshape(M, M))
    return np.stack(out)


def dialogue_win_rate(p: np.ndarray, q: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Exact ``P(dialogue ~ p > dialogue ~ q)`` per task, ``(tasks,)``."""
    return np.einsum("ti,tij,tj->t", p, win, q)


def expected_correct(p: np.ndarray, problem: MultiTurnMenuProblem) -> np.ndarray:
    """Expected number of correct replies per episode (``problem.reply_correct`` per turn), ``(tasks,)``."""
    out = []
    for i in range(len(problem)):
        score = np.array([sum(problem.reply_correct(i, path[:h]) for h in range(1, problem.horizon + 1))
                          for path in problem.trajectories(i)], dtype=float)
        out.append(float(p[i] @ score))
    return np.asarray(out)
