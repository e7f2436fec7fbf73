"""Multi-turn self-play on per-turn menus: a per-state response source for 001 Alg. 2 (issue #5, item 4).

Setting. A :class:`MultiTurnMenuProblem` gives every state ``s_h`` of a task a menu of ``N``
replies, :meth:`MultiTurnMenuProblem.menu_at` ``(i, replies so far)``; the menu may depend on
the earlier replies (:class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem`: the
correct next reasoning step builds on the values the policy wrote before). The source and
the exact evaluators below enumerate prefixes with their actual reply strings, so they serve
both kinds. The dialogue problem: a task (:class:`~prefgym.data.dialogue.DialogueTask`) has user turns
``x_1 .. x_H``; at every turn the assistant picks one of ``N`` candidate replies (a *turn
menu*, :func:`dialogue_turn_menu`: the task's reference reply, a distractor and an "I am
not sure" reply; three acknowledgements at a scene-setting turn without references). The
policy at state ``s_h`` (the conversation so far, ``format_dialogue`` with the turn open)
is an LM's sequence probabilities renormalised over that turn's menu, as
:class:`~prefgym.agents.llm.menu.MenuPolicy` does for one fixed menu, but the menu here
depends on the task and the turn.

:class:`MultiTurnMenuSource` is the :class:`~prefgym.agents.llm.trainer.ResponseSource`
of 001 Alg. 2 on such a problem. For each task of the iteration it rolls out ``pi_t``
(one main rollout, turn by turn, batched over tasks); at every visited state ``s_h`` it
draws ``K`` replies from ``pi_t(. | s_h)`` (the first continues the rollout) or, with
``exact=True``, enumerates the menu with weights ``pi_t``. The one-step Q of 001 Sec. 4.2
(MT-bench) is the win rate ``P([s_h, a] > [s_h, a'])`` of the reply among the state's
replies (the judge sees the transcripts of turns ``1..h``); the second term of OMPO's
target, ``P(a > pi_{t-1})``, is the win rate against ``K`` replies of the previous iterate
at the same state (:meth:`MultiTurnMenuSource.win_rates_against`). A batch row is one
state, ``batch.steps`` its turn ``h``.

Terminal preference (``q="terminal"``, 001 App. G.2 trains math this way). The Q of a
reply compares whole episodes under a ``terminal_judge`` (``FinalAnswerJudge``,
``DialogueTaskJudge(scope="all")``): every reply at ``s_h`` is continued to the horizon by
``pi_t`` (the first by the main rollout), ``Q-hat(s_h, a)`` is the leave-one-out win rate
of its episode among the state's ``K``; OMPO's second term continues ``K`` replies of
``pi_{t-1}`` by ``pi_{t-1}`` (``Q^{pi_t, pi_{t-1}}``, 001 Eq. 2). ``exact=True`` enumerates
the ``N^(H-h)`` continuations of every reply. Continuations are batched: one
:func:`menu_log_probs` pass per level over all of them. See :class:`MultiTurnMenuSource`.

Hook. :func:`multiturn_trainer` builds a
:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` on the underlying
:class:`~prefgym.llm.policy.LMPolicy` and hands it this source through ``source=``.
The trainer's prompts are the tasks' first states ``s_1``.

Evaluation is exact: :func:`trajectory_distributions` enumerates the ``N^H`` episodes of
each task with their probabilities under a policy (``1 + N + ... + N^(H-1)`` states per
task, scored level by level in batched passes), and :func:`dialogue_win_rate` gives
``P(policy's dialogue > opponent's dialogue)`` under a whole-dialogue judge
(``DialogueTaskJudge(scope="all")``: more correct replies wins).

Algorithms. OMPO is :class:`~prefgym.agents.llm.algorithms.OMPOAlgorithm` with the
one-step ``log Z = beta / 2`` (the tie value of a one-step Q, 001 notes 2.6).
:class:`OneStepMPOAlgorithm` is 001's non-optimistic MPO (App. D, Alg. 4) with the same
one-step Q: the regression :func:`~prefgym.agents.llm.losses.mpo_regression_loss` on
``beta (P(a > pi_t) - 1/2)`` (the repository's ``mpo`` is 000's magnetic MPO).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from prefgym.agents.llm.algorithms import ALGORITHMS, SelfPlayAlgorithm, SelfPlayBatch
from prefgym.agents.llm.losses import mpo_regression_loss
from prefgym.agents.llm.trainer import CONFIG_FILE, ResponseSource, SelfPlayTrainer, leave_one_out_weights
from prefgym.data.dialogue import DialogueTask, parse_dialogue_transcript
from prefgym.llm.base import ASSISTANT, format_dialogue

__all__ = [
    "ACKNOWLEDGEMENTS",
    "UNSURE",
    "dialogue_turn_menu",
    "MultiTurnMenuProblem",
    "MultiTurnMenuSource",
    "OneStepMPOAlgorithm",
    "MultiTurnTrainer",
    "multiturn_trainer",
    "load_multiturn_trainer",
    "trajectory_distributions",
    "trajectory_win_matrices",
    "dialogue_win_rate",
    "expected_correct",
]

#: replies offered at a turn without reference facts (all accepted by the judge)
ACKNOWLEDGEMENTS = ("OK.", "Ready.", "Sure, go ahead.")
#: the abstaining reply offered at every judged turn (never correct)
UNSURE = "I am not sure, sorry."


def dialogue_turn_menu(task: DialogueTask, h: int) -> tuple[str, ...]:
    """The 3 candidate replies of turn ``h`` (1-based) of a task with references.

    ``("The answer is <references>.", "The answer is <first distractor>.", UNSURE)``, the
    correct and wrong replies of :class:`~prefgym.data.dialogue.SyntheticDialogueSolver`
    plus an abstention; :data:`ACKNOWLEDGEMENTS` at a turn without references.
    """
    if task.references is None:
        raise ValueError(f"task {task.id!r} has no references; its turns have no menu")
    refs = task.references[h - 1]
    if not refs:
        return ACKNOWLEDGEMENTS
    dis = task.distractors[h - 1] if task.distractors else ()
    if not dis:
        raise ValueError(f"task {task.id!r} turn {h} has no distractor to offer")
    return (f"The answer is {' and '.join(refs)}.", f"The answer is {dis[0]}.", UNSURE)


class MultiTurnMenuProblem:
    """Tasks, the menu of every state, and the states and transcripts of their episodes.

    The one abstraction :class:`MultiTurnMenuSource` and the exact evaluators use. A state
    ``s_h`` of task ``i`` is given by the replies ``y_1 .. y_{h-1}`` chosen so far, and its
    menu by :meth:`menu_at` ``(i, replies)``: it may depend on the earlier replies (a
    reasoning step builds on the values the policy wrote before, see
    :class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem`). This class is the
    dialogue problem; a subclass changes the episode format by overriding the hooks
    :meth:`task_horizon`, :meth:`task_menu`, :meth:`state`, :meth:`transcript`,
    :meth:`context`, :meth:`locate` and :meth:`reply_correct`.

    Parameters
    ----------
    tasks
        Dialogue tasks with the same horizon ``H`` and distinct first messages.
    menu
        ``menu(task, h) -> replies`` (default :func:`dialogue_turn_menu`): a per-turn menu
        that does not depend on the earlier replies. Every state of every task must offer
        the same number ``N >= 2`` of distinct replies (checked on all
        ``1 + N + ... + N^(H-1)`` states of every task).
    """

    #: whether a state's menu may depend on the earlier replies (not only on the turn)
    reply_dependent: ClassVar[bool] = False

    def __init__(self, tasks: Sequence,
                 menu: Callable[[DialogueTask, int], Sequence[str]] = dialogue_turn_menu):
        self._menu_fn = menu
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("a problem needs at least one task")
        horizons = {self.task_horizon(t) for t in self.tasks}
        if len(horizons) != 1:
            raise ValueError(f"all tasks must have the same horizon; got {sorted(horizons)}")
        self.horizon = horizons.pop()
        if self.horizon < 1:
            raise ValueError(f"the horizon must be >= 1; got {self.horizon}")
        self._menus: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
        self.n = 0
        self.n = len(self.menu_at(0, ()))
        if self.n < 2:
            raise ValueError(f"every menu needs N >= 2 replies; got {self.n}")
        self._paths = [self._enumerate(i) for i in range(len(self.tasks))]  # validates every menu
        self.first_states = [self.state(i, ()) for i in range(len(self.tasks))]
        if len(set(self.first_states)) != len(self.first_states):
            raise ValueError("tasks must have distinct first states (first messages / questions)")
        self._by_first = {s: i for i, s in enumerate(self.first_states)}

    def __len__(self) -> int:
        return len(self.tasks)

    # ------------------------------------------------------------ menus and episodes
    def menu_at(self, i: int, replies: Sequence[str] | int) -> tuple[str, ...]:
        """The menu of task ``i`` at the state reached by ``replies`` (turn ``h = len(replies) + 1``).

        ``menu_at(i, h)`` with an int turn ``h`` (1-based) is accepted for problems whose menus
        do not depend on the earlier replies (``reply_dependent = False``).
        """
        if isinstance(replies, (int, np.integer)):
            h = int(replies)
            if self.reply_dependent:
                raise TypeError(f"{type(self).__name__}'s menus depend on the earlier replies; "
                                "call menu_at(i, replies) with the replies so far")
            if not 1 <= h <= self.horizon:
                raise ValueError(f"turn h must be in 1..{self.horizon}; got {h}")
            replies = self.replies(i, (0,) * (h - 1))
        key = (int(i), tuple(replies))
        menu = self._menus.get(key)
        if menu is None:
            if not 0 <= key[0] < len(self.tasks):
                raise IndexError(f"task index {i} out of range for {len(self.tasks)} tasks")
            if len(key[1]) >= self.horizon:
                raise ValueError(f"{len(key[1])} replies already end the episode (horizon {self.horizon})")
            menu = tuple(self.task_menu(key[0], key[1]))
            if self.n and len(menu) != self.n:
                raise ValueError(f"every menu needs the same size N = {self.n}; task {key[0]} after "
                                 f"{list(key[1])} offers {len(menu)}")
            if len(set(menu)) != len(menu):
                raise ValueError(f"menus must hold distinct replies; got {menu}")
            self._menus[key] = menu
        return menu

    def replies(self, i: int, choice: Sequence[int]) -> tuple[str, ...]:
        """The replies of task ``i`` that pick menu items ``choice[0], choice[1], ...`` in turn."""
        out: list[str] = []
        for c in choice:
            out.append(self.menu_at(i, out)[int(c)])
        return tuple(out)

    def _enumerate(self, i: int) -> list[tuple[str, ...]]:
        paths: list[tuple[str, ...]] = [()]
        for _ in range(self.horizon):
            paths = [(*p, y) for p in paths for y in self.menu_at(i, p)]
        return paths

    def trajectories(self, i: int) -> list[tuple[str, ...]]:
        """The ``N^H`` reply sequences of task ``i``; ``j`` picks item ``digits_N(j)[h-1]`` at ``h``."""
        return self._paths[i]

    def fingerprint(self) -> str:
        """A SHA-256 digest of the task ids, the horizon and every state's menu (checks a checkpoint)."""
        h = hashlib.sha256(f"{type(self).__name__}|H={self.horizon}|N={self.n}".encode())
        for i, t in enumerate(self.tasks):
            h.update(f"\x1e{getattr(t, 'id', i)}".encode())
            for path in self._paths[i]:
                for k in range(self.horizon):
                    h.update("\x1f".join(self.menu_at(i, path[:k])).encode())
        return h.hexdigest()

    # ------------------------------------------------------------ hooks (the dialogue problem)
    def task_horizon(self, task) -> int:
        """The number of turns of ``task``."""
        return task.horizon

    def task_menu(self, i: int, replies: tuple[str, ...]) -> Sequence[str]:
        """The menu of task ``i`` after ``replies``: here ``menu(task, h)``, whatever the replies."""
        return self._menu_fn(self.tasks[i], len(replies) + 1)

    def state(self, i: int, replies: Sequence[str]) -> str:
        """``s_h`` of task ``i`` after ``replies`` (``h = len(replies) + 1``): the turn left open."""
        t = self.tasks[i]
        turns = [(x, r) for x, r in zip(t.turns, replies, strict=False)]
        return format_dialogue([*turns, (t.turns[len(replies)], None)])

    def transcript(self, i: int, replies: Sequence[str]) -> str:
        """The closed transcript of turns ``1..len(replies)`` (what the judge compares)."""
        return format_dialogue(list(zip(self.tasks[i].turns, replies, strict=False)))

    def context(self, i: int, h: int) -> str:
        """The judge's context at turn ``h``: the user turns ``x_1..x_h``."""
        return self.tasks[i].context(h)

    def locate(self, state: str) -> tuple[int, list[str]]:
        """The task index and earlier replies of an open state."""
        head = state.split(f"\n{ASSISTANT}:", 1)[0] + f"\n{ASSISTANT}:"
        if head not in self._by_first:
            raise ValueError(f"state {state[:80]!r} belongs to no task of this problem")
        i = self._by_first[head]
        replies = parse_dialogue_transcript(self.tasks[i].turns, state)
        if not replies or replies[-1] is not None:
            raise ValueError("a state must end with an open assistant turn")
        return i, list(replies[:-1])

    def reply_correct(self, i: int, replies: Sequence[str]) -> bool:
        """Whether the last of ``replies`` is correct at its turn (``task.reply_correct``)."""
        return bool(self.tasks[i].reply_correct(len(replies), replies[-1]))


def _reply_ids(policy, reply: str, cache: dict[str, Tensor]) -> Tensor:
    if reply not in cache:
        tok = policy.tokenizer
        eos = list(policy.eos_token_ids[:1]) if policy.eos_token_ids else []
        cache[reply] = torch.tensor(list(tok(" " + reply, add_special_tokens=False)["input_ids"]) + eos,
                                    dtype=torch.long)
    return cache[reply]


def menu_log_probs(policy, states: Sequence[str], menus: Sequence[Sequence[str]], requires_grad: bool = False,
                   cache: dict[str, Tensor] | None = None, batch_size: int | None = None) -> Tensor:
    """``log pi(y_i | s_b)`` renormalised over each state's own menu, ``(B, N)`` (one batched pass).

    Each reply is scored as ``" " + reply + EOS`` after the open state (the transcript's
    spacing). The logit of a reply is its LM sequence log-prob relative to a uniform-token
    model, ``log pi_LM(y | s) + |y| log V`` (``V`` the tokenizer's size): a fixed offset per
    reply that leaves every gradient unchanged, so that a random-init LM starts near
    uniform over replies of different token lengths (``llm-menu`` gets the same by giving
    its replies equal lengths; without it the shortest reply takes almost all the mass).
    """
    cache = {} if cache is None else cache
    n = len(menus[0])
    rows_p = [s for s in states for _ in range(n)]
    rows_r = [_reply_ids(policy, r, cache) for m in menus for r in m]
    lps = policy.sequence_logprobs(rows_p, rows_r, requires_grad=requires_grad, batch_size=batch_size)
    log_v = math.log(len(policy.tokenizer))
    logits = torch.stack([lp.sum() + len(r) * log_v for lp, r in zip(lps, rows_r, strict=True)])
    return torch.log_softmax(logits.reshape(len(states), n), dim=-1)


class MultiTurnMenuSource(ResponseSource):
    """Per-state data of 001 Alg. 2 on a :class:`MultiTurnMenuProblem` (see the module docstring).

    Parameters
    ----------
    policy
        The :class:`~prefgym.llm.policy.LMPolicy` being trained.
    problem
        The tasks and menus; the trainer's prompts are ``problem.first_states``.
    judge
        Per-turn pairwise judge on (``task.context(h)``, transcript of turns ``1..h``),
        e.g. ``DialogueTaskJudge(tasks, scope="last")``.
    exact
        Enumerate each state's menu (``weights = pi_t``, exact win rates); default
        ``False``: ``num_samples`` draws per state as 001 does.
    num_samples
        ``K`` replies per state (sampled mode).
    batch_size
        Rows per teacher-forced pass.
    q
        Which Q of a reply ``a`` at a state ``s_h`` the batch carries:

        - ``"one_step"`` (default; 001 Sec. 4.2): ``P([s_h, a] > [s_h, a'])`` under ``judge``,
          the sum of 001 Eq. (2) truncated to ``tau = h``.
        - ``"terminal"`` (001 App. G.2, math: a terminal preference only): whole episodes
          are compared. Each of the ``K`` replies is continued to the horizon ``H`` by
          ``pi_t`` and ``terminal_judge`` compares the closed transcripts of all ``H``
          turns (context ``problem.context(i, H)``); ``Q-hat(s_h, a)`` is the leave-one-out
          win rate of its episode among the ``K`` episodes of the state. With a
          reward at ``tau = H`` only, 001 Eq. (2)'s sum over ``tau`` has one term, so
          ``Q_h^{pi_t, pi_t}(s_h, a, s_h, a') = E[P(episode > episode')]`` with *both*
          episodes continued by ``pi_t`` (Lemma 2: the pairwise value of ``(pi, pi')``
          rolls the first player with ``pi`` and the second with ``pi'``). Following 001
          Alg. 2, the first sample continues the main rollout itself and the other
          ``K - 1`` are fresh rollouts of ``pi_t``. OMPO's second term is
          ``Q^{pi_t, pi_{t-1}}`` (001 Eq. 2, the ``dagger`` trajectories): in
          :meth:`win_rates_against` *our* episodes are the same ``pi_t``-continued ones
          (001 Eq. 2 uses one ``(S^k, A^k)`` in both terms), and each of the ``K``
          opponent replies drawn from ``pi_{t-1}(. | s_h)`` is continued by
          ``pi_{t-1}`` (the second player of ``Q^{pi_t, pi_{t-1}}`` plays ``pi_{t-1}``
          throughout). The tie value is still ``1/2`` (one preference per episode), so
          ``log Z = beta / 2`` is unchanged (001 G.2: "log z = 0.5"). With
          ``exact=True`` every continuation is enumerated (``N^(H-h)`` per reply) and
          the Q is exact; with ``H = 1`` and ``terminal_judge = judge`` it is the
          one-step Q.
    terminal_judge
        The whole-episode judge of ``q="terminal"`` (e.g. ``FinalAnswerJudge`` for
        reasoning, ``DialogueTaskJudge(tasks, scope="all")`` for dialogues); required
        there and refused otherwise.

    Raises
    ------
    ValueError
        On an unknown ``q``, ``q="terminal"`` without a ``terminal_judge`` (or a
        ``terminal_judge`` with ``q="one_step"``), or ``num_samples < 2`` when sampling.
    """

    #: the Q estimates :class:`MultiTurnMenuSource` can carry
    Q_KINDS: ClassVar[tuple[str, ...]] = ("one_step", "terminal")

    def __init__(self, policy, problem: MultiTurnMenuProblem, judge, exact: bool = False,
                 num_samples: int = 4, batch_size: int | None = None, q: str = "one_step",
                 terminal_judge=None):
        if not exact and int(num_samples) < 2:
            raise ValueError(f"sampling needs num_samples >= 2; got {num_samples}")
        if q not in self.Q_KINDS:
            raise ValueError(f"q must be one of {self.Q_KINDS}; got {q!r}")
        if q == "terminal" and terminal_judge is None:
            raise ValueError("q='terminal' compares whole episodes: pass terminal_judge=, a whole-episode "
                             "judge (e.g. FinalAnswerJudge, or DialogueTaskJudge(tasks, scope='all'))")
        if q == "one_step" and terminal_judge is not None:
            raise ValueError("terminal_judge is only used with q='terminal'; got q='one_step'")
        self.policy, self.problem, self.judge = policy, problem, judge
        self.exact, self.k, self.batch_size = bool(exact), int(num_samples), batch_size
        self.q, self.terminal_judge = q, terminal_judge
        self._ids: dict[str, Tensor] = {}
        self._win_cache: dict[tuple[int, tuple[str, ...]], Tensor] = {}
        self._pair_cache: dict[tuple[int, tuple[str, ...], tuple[str, ...]], float] = {}

    # ------------------------------------------------------------ helpers
    def _lp(self, states, menus, policy=None, requires_grad=False) -> Tensor:
        pol = self.policy if policy is None else policy
        return menu_log_probs(pol, states, menus, requires_grad=requires_grad, cache=self._ids,
                              batch_size=self.batch_size)

    def _menu_win(self, i: int, replies: Sequence[str]) -> Tensor:
        """``P([s_h, y_a] > [s_h, y_b])`` over the menu at the state of task ``i`` after ``replies``."""
        key = (i, tuple(replies))
        if key not in self._win_cache:
            h = len(replies) + 1
            menu = self.problem.menu_at(i, replies)
            ctx = self.problem.context(i, h)
            texts = [self.problem.transcript(i, [*replies, y]) for y in menu]
            pairs = list(itertools.product(range(len(menu)), repeat=2))
            p = self.judge.prob([ctx] * len(pairs), [texts[a] for a, _ in pairs],
                                [texts[b] for _, b in pairs])
            n = len(menu)
            self._win_cache[key] = torch.as_tensor(np.asarray(p), dtype=torch.float32).reshape(n, n)
        return self._win_cache[key]

    # ------------------------------------------------------------ terminal Q (q="terminal")
    def _episode_win(self, tasks: Sequence[int], eps_a: Sequence[tuple[str, ...]],
                     eps_b: Sequence[tuple[str, ...]]) -> np.ndarray:
        """``P(episode a > episode b)`` per pair under ``terminal_judge`` (one batched call for new pairs)."""
        H = self.problem.horizon
        keys = list(zip(tasks, eps_a, eps_b, strict=True))
        new = [k for k in dict.fromkeys(keys) if k not in self._pair_cache]
        if new:
            if len(self._pair_cache) + len(new) > 2_000_000:  # bound the memory of long sampled runs
                self._pair_cache.clear()
            p = self.terminal_judge.prob([self.problem.context(i, H) for i, _, _ in new],
                                         [self.problem.transcript(i, a) for i, a, _ in new],
                                         [self.problem.transcript(i, b) for i, _, b in new])
            self._pair_cache.update(zip(new, np.asarray(p, dtype=float).reshape(-1).tolist(), strict=True))
        return np.array([self._pair_cache[k] for k in keys], dtype=float)

    def _rollout(self, policy, tasks: Sequence[int], prefixes: Sequence[Sequence[str]],
                 gen: torch.Generator | None) -> list[tuple[str, ...]]:
        """Continue every ``(task, prefix)`` to the horizon under ``policy`` (``gen=None``: greedily).

        Prefixes of any length advance together: one :func:`menu_log_probs` pass per level.
        """
        prob, H = self.problem, self.problem.horizon
        eps = [tuple(x) for x in prefixes]
        while True:
            act = [j for j, e in enumerate(eps) if len(e) < H]
            if not act:
                return eps
            menus = [prob.menu_at(tasks[j], eps[j]) for j in act]
            lp = self._lp([prob.state(tasks[j], eps[j]) for j in act], menus, policy=policy)
            if gen is None:
                pick = lp.argmax(-1)
            else:
                pick = torch.multinomial(lp.double().exp(), 1, generator=gen)[:, 0]
            for j, m, c in zip(act, menus, pick.tolist(), strict=True):
                eps[j] = (*eps[j], m[c])

    def _continuations(self, policy, tasks: Sequence[int], prefixes: Sequence[Sequence[str]]
                       ) -> tuple[list[list[tuple[str, ...]]], list[np.ndarray]]:
        """All episodes through each state's menu items, with their continuation probabilities.

        For the state of ``(task, prefix)`` at turn ``h = len(prefix) + 1``: its ``N^(H-h+1)``
        episodes, item ``a`` of the menu then continuation ``c`` at position ``a * m + c``
        (``m = N^(H-h)``), and ``P_policy(c | s_h, a)`` as an ``(N, m)`` array (rows sum to 1).
        One :func:`menu_log_probs` pass per level over all states.
        """
        prob, H, N = self.problem, self.problem.horizon, self.problem.n
        nodes = [[(*x, y) for y in prob.menu_at(i, x)] for i, x in zip(tasks, prefixes, strict=True)]
        logp = [np.zeros(N) for _ in nodes]
        while True:
            act = [r for r, ns in enumerate(nodes) if len(ns[0]) < H]
            if not act:
                break
            flat = [(tasks[r], e) for r in act for e in nodes[r]]
            lp = self._lp([prob.state(i, e) for i, e in flat], [prob.menu_at(i, e) for i, e in flat],
                          policy=policy).double().numpy()
            pos = 0
            for r in act:
                block = lp[pos:pos + len(nodes[r])]
                pos += len(nodes[r])
                logp[r] = (logp[r][:, None] + block).reshape(-1)
                nodes[r] = [(*e, y) for e in nodes[r] for y in prob.menu_at(tasks[r], e)]
        return nodes, [np.exp(lp).reshape(N, -1) for lp in logp]

    def _terminal_matrix(self, tasks: Sequence[int], nodes: list[list[tuple[str, ...]]],
                         ours: list[np.ndarray], theirs: list[np.ndarray]) -> Tensor:
        """Exact ``Q(s_h, a, s_h, a') = E[P(episode_a > episode_a')]`` per state, ``(R, N, N)``.

        ``ours`` continues the first player's episode, ``theirs`` the second's
        (``P_ours(c | a) W[(a, c), (a', c')] P_theirs(c' | a')``, 001 Lemma 2 with a
        terminal reward).
        """
        N = self.problem.n
        out = []
        for i, eps, po, pt in zip(tasks, nodes, ours, theirs, strict=True):
            M, m = len(eps), len(eps) // N
            W = self._episode_win([i] * (M * M), [a for a in eps for _ in eps], [b for _ in eps for b in eps])
            out.append(np.einsum("ac,acbd,bd->ab", po, W.reshape(N, m, N, m), pt))
        return torch.as_tensor(np.stack(out), dtype=torch.float32)

    def exact_terminal_q(self, states: Sequence[str], opponent=None) -> Tensor:
        """Exact terminal ``Q^{pi_t, opponent}(s_h, a)`` for every menu item of each open state, ``(B, N)``.

        ``sum_{a'} opponent(a' | s_h) E[P(episode_a > episode_a')]``: our episode is ``a``
        continued by the source's policy ``pi_t``, the opponent's is ``a' ~ opponent(. | s_h)``
        continued by the opponent (default ``opponent = pi_t``: the Q of ``collect``). Every
        continuation is enumerated (``N^(H-h)`` per item; 001 Lemma 2 with a terminal reward).
        """
        if self.terminal_judge is None:
            raise ValueError("exact_terminal_q needs a terminal_judge (a source built with q='terminal')")
        opponent = self.policy if opponent is None else opponent
        located = [self.problem.locate(s) for s in states]
        tasks, prefixes = [i for i, _ in located], [tuple(r) for _, r in located]
        menus = [self.problem.menu_at(i, r) for i, r in located]
        nodes, ours = self._continuations(self.policy, tasks, prefixes)
        theirs = ours if opponent is self.policy else self._continuations(opponent, tasks, prefixes)[1]
        M = self._terminal_matrix(tasks, nodes, ours, theirs)
        q = self._lp(list(states), menus, policy=opponent).exp().float()
        return (M @ q[..., None])[..., 0]

    def _continuation_generator(self, seed: int) -> torch.Generator:
        # a stream of its own: the main rollout and the K replies are those of q="one_step"
        return torch.Generator().manual_seed((int(seed) * 1_000_003 + 0x7E4A1) % (2**63 - 1))

    # ------------------------------------------------------------ ResponseSource API
    def collect(self, prompts, seed):
        prob, H, N = self.problem, self.problem.horizon, self.problem.n
        tasks = [prob.locate(p)[0] for p in prompts]
        gen = torch.Generator().manual_seed(int(seed))
        replies: list[list[str]] = [[] for _ in tasks]
        rows = []  # (task, earlier replies, h, state, menu, menu log-probs, indices)
        for h in range(1, H + 1):
            states = [prob.state(i, r) for i, r in zip(tasks, replies, strict=True)]
            menus = [prob.menu_at(i, r) for i, r in zip(tasks, replies, strict=True)]
            lp = self._lp(states, menus)
            if self.exact:
                idx = torch.arange(N).expand(len(tasks), N)
                act = torch.multinomial(lp.double().exp(), 1, generator=gen)[:, 0]
            else:
                idx = torch.multinomial(lp.double().exp(), self.k, replacement=True, generator=gen)
                act = idx[:, 0]  # the main rollout continues with the first sample (001 Alg. 2)
            for b, i in enumerate(tasks):
                rows.append((i, list(replies[b]), h, states[b], menus[b], lp[b], idx[b], b))
            for b in range(len(tasks)):
                replies[b].append(menus[b][int(act[b])])
        menu_lp = torch.stack([row[5] for row in rows])
        idx = torch.stack([row[6] for row in rows])
        row_tasks = [row[0] for row in rows]
        extra: dict[str, Any] = {}
        if self.q == "one_step":
            full_w = torch.stack([self._menu_win(i, r) for i, r, *_ in rows])
        elif self.exact:  # exact terminal Q: all continuations of every item by pi_t (both players)
            nodes, cont = self._continuations(self.policy, row_tasks, [row[1] for row in rows])
            full_w = self._terminal_matrix(row_tasks, nodes, cont, cont)
            extra.update(episodes=nodes, continuation_probs=cont)
        else:  # sampled terminal Q: sample 0 continues the main rollout, the others by fresh pi_t rollouts
            K = self.k
            starts = [(*row[1], row[4][int(k)]) for row in rows for k in row[6][1:].tolist()]
            conts = self._rollout(self.policy, [i for i in row_tasks for _ in range(K - 1)], starts,
                                  self._continuation_generator(seed))
            episodes = [[tuple(replies[row[7]]), *conts[j * (K - 1):(j + 1) * (K - 1)]]
                        for j, row in enumerate(rows)]
            W = self._episode_win([i for i in row_tasks for _ in range(K * K)],
                                  [a for eps in episodes for a in eps for _ in eps],
                                  [b for eps in episodes for _ in eps for b in eps])
            W = torch.as_tensor(W, dtype=torch.float32).reshape(len(rows), K, K)
            full_w = None
            extra.update(episodes=episodes)
        if full_w is not None:
            W = torch.stack([full_w[j][idx[j]][:, idx[j]] for j in range(len(rows))])
        if self.exact:
            weights = menu_lp.exp()
            win_rate = (full_w @ weights[..., None])[..., 0]
        else:
            weights = None
            win_rate = (W.sum(-1) - torch.diagonal(W, dim1=-2, dim2=-1)) / (self.k - 1)  # leave-one-out
        tok = self.policy.tokenizer
        states = [row[3] for row in rows]
        batch = SelfPlayBatch(
            prompts=states,
            prompt_ids=[torch.tensor(e, dtype=torch.long) for e in tok(states)["input_ids"]],
            response_ids=[[_reply_ids(self.policy, row[4][k], self._ids) for k in row[6].tolist()]
                          for row in rows],
            texts=[[row[4][k] for k in row[6].tolist()] for row in rows],
            old_logp=menu_lp.gather(-1, idx), ref_logp=None, win_matrix=W, win_rate=win_rate,
            weights=weights, menu_index=idx, steps=torch.tensor([float(row[2]) for row in rows]))
        batch.extra.update(menu_logp=menu_lp, menu_win_matrix=full_w, menus=[row[4] for row in rows],
                           tasks=row_tasks, prefixes=[tuple(row[1]) for row in rows], q=self.q, **extra)
        return batch

    def logp(self, batch, requires_grad=False, policy=None):
        lp = self._lp(batch.prompts, batch.extra["menus"], policy=policy, requires_grad=requires_grad)
        return lp.gather(-1, batch.menu_index.to(lp.device))

    def win_rates_against(self, batch, opponent, seed, greedy=False):
        """``P(y > opponent | s_h)`` per reply of the batch, ``(B, K)``, and optionally the greedy reply's.

        One-step Q: against the opponent's replies at the same state (exact, or ``K``
        draws as 001 Sec. 4.2). Terminal Q: ``Q^{pi_t, opponent}`` (001 Eq. 2's second
        term with ``opponent = pi_{t-1}``): the batch's own ``pi_t``-continued episodes
        against ``K`` opponent replies each continued by the opponent (exact: all
        continuations). The greedy reply (``greedy=True``, terminal Q) is continued
        greedily by the current policy.
        """
        if batch.extra.get("q", "one_step") == "terminal":
            return self._terminal_against(batch, opponent, seed, greedy)
        q_lp = self._lp(batch.prompts, batch.extra["menus"], policy=opponent)
        full_w = batch.extra["menu_win_matrix"].cpu()
        idx = batch.menu_index.cpu()
        if batch.exact:
            full = (full_w @ q_lp.exp()[..., None])[..., 0]  # exact P(y > opponent) per menu item
        else:  # 001 Sec. 4.2: against K replies of the opponent at the same state
            gen = torch.Generator().manual_seed(int(seed))
            z = torch.multinomial(q_lp.double().exp(), self.k, replacement=True, generator=gen)
            full = torch.stack([full_w[j][:, z[j]].mean(-1) for j in range(len(z))])
        g = None
        if greedy:
            g = full.gather(-1, batch.extra["menu_logp"].cpu().argmax(-1, keepdim=True))[:, 0]
        return full.gather(-1, idx), g

    def _terminal_against(self, batch, opponent, seed, greedy):
        tasks, prefixes, menus = batch.extra["tasks"], batch.extra["prefixes"], batch.extra["menus"]
        q_first = self._lp(batch.prompts, menus, policy=opponent).double().exp()
        if batch.exact:  # our continuations by pi_t (stored), the opponent's by the opponent
            nodes, theirs = self._continuations(opponent, tasks, prefixes)
            M = self._terminal_matrix(tasks, nodes, batch.extra["continuation_probs"], theirs)
            full = (M @ q_first.float()[..., None])[..., 0]
            rates = full.gather(-1, batch.menu_index.cpu())
            # the opponent's episode distribution: first reply q(a'), then its continuation
            opp_eps = nodes
            opp_w = [(q_first[r].numpy()[:, None] * theirs[r]).reshape(-1) for r in range(len(nodes))]
        else:
            K = self.k
            gen = torch.Generator().manual_seed(int(seed))
            z = torch.multinomial(q_first, K, replacement=True, generator=gen)
            starts = [(*pre, m[int(k)]) for pre, m, zr in zip(prefixes, menus, z, strict=True) for k in zr]
            flat = self._rollout(opponent, [i for i in tasks for _ in range(K)], starts, gen)
            opp_eps = [flat[r * K:(r + 1) * K] for r in range(len(tasks))]
            opp_w = [np.full(K, 1.0 / K) for _ in tasks]
            ours = batch.extra["episodes"]
            P = self._episode_win([i for i in tasks for _ in range(K * K)],
                                  [a for r in range(len(tasks)) for a in ours[r] for _ in range(K)],
                                  [b for r in range(len(tasks)) for _ in range(K) for b in opp_eps[r]])
            rates = torch.as_tensor(P.reshape(len(tasks), K, K).mean(-1), dtype=torch.float32)
        g = None
        if greedy:
            first = batch.extra["menu_logp"].cpu().argmax(-1).tolist()
            mine = self._rollout(self.policy, tasks, [(*pre, m[a]) for pre, m, a in
                                                      zip(prefixes, menus, first, strict=True)], None)
            P = self._episode_win([i for i, e in zip(tasks, opp_eps, strict=True) for _ in e],
                                  [a for a, e in zip(mine, opp_eps, strict=True) for _ in e],
                                  [b for e in opp_eps for b in e])
            sizes = np.cumsum([0, *(len(e) for e in opp_eps)])
            g = torch.as_tensor([float(P[sizes[r]:sizes[r + 1]] @ opp_w[r]) for r in range(len(tasks))],
                                dtype=torch.float32)
        return rates, g

    def win_rates_mixture(self, batch, log_weights):
        """``P(y > mixture | s_h)`` for a mixture over the state's replies, from the batch's own matrix.

        With a terminal Q the mixture reweights the reply at ``s_h`` only; both episodes are
        continued by ``pi_t`` (the matrix of :meth:`collect`).
        """
        if batch.exact:
            q = torch.softmax(log_weights.float(), dim=-1)
            return (batch.win_matrix @ q[..., None])[..., 0]
        w = leave_one_out_weights((log_weights - batch.old_logp).float())
        return (batch.win_matrix * w).sum(-1)

    def predict(self, prompts, deterministic, seed):
        located = [self.problem.locate(p) for p in prompts]
        menus = [self.problem.menu_at(i, r) for i, r in located]
        lp = self._lp(list(prompts), menus)
        if deterministic:
            idx = lp.argmax(-1)
        else:
            gen = None if seed is None else torch.Generator().manual_seed(int(seed))
            idx = torch.multinomial(lp.double().exp(), 1, generator=gen)[:, 0]
        return [m[int(k)] for m, k in zip(menus, idx, strict=True)]


@dataclass
class OneStepMPOAlgorithm(SelfPlayAlgorithm):
    """001's MPO (App. D, Alg. 4) with a one-step Q: regress ``log pi/pi_t`` on ``beta (P(a > pi_t) - 1/2)``.

    The non-optimistic counterpart of OMPO with the same one-step Q (at the first
    iteration the two coincide). Not 000's magnetic MPO (``mpo`` in ``ALGORITHMS``).

    Parameters
    ----------
    beta
        Step size.
    """

    name: ClassVar[str] = "mpo_001"
    beta: float = 1.0

    def exact_step(self, batch):
        return batch.old_logp + self.beta * batch.win_rate  # rules.mirror_step

    def loss(self, trainer, batch, logp, iteration):
        dev = logp.device
        return mpo_regression_loss(logp, batch.old_logp.to(dev), batch.win_rate.to(dev), beta=self.beta,
                                   weights=None if batch.weights is None else batch.weights.to(dev))


class MultiTurnTrainer(SelfPlayTrainer):
    """A :class:`SelfPlayTrainer` whose source is a :class:`MultiTurnMenuSource` (build it with
    :func:`multiturn_trainer`).

    Its checkpoints record the problem (class, task ids, :meth:`MultiTurnMenuProblem.fingerprint`)
    and the source's settings in ``trainer.json`` under ``"multiturn"``; resuming
    (``resume_from=``) or :func:`load_multiturn_trainer` on another problem raises.
    """

    def _config(self) -> dict[str, Any]:
        src, prob = self.source, self.source.problem
        return {**super()._config(), "multiturn": {
            "problem": type(prob).__name__, "tasks": [getattr(t, "id", None) for t in prob.tasks],
            "fingerprint": prob.fingerprint(), "exact": src.exact, "num_samples": src.k, "q": src.q}}

    @classmethod
    def load(cls, path, *args, **kwargs):
        """Not available: a multi-turn trainer needs its problem; see :func:`load_multiturn_trainer`."""
        raise TypeError("a multi-turn trainer needs its problem to be rebuilt: use "
                        "prefgym.agents.llm.multiturn.load_multiturn_trainer(path, problem, judge)")

    def _restore(self, path: Path) -> None:
        _check_problem(self.resolve_checkpoint(path), self.source.problem, strict=False)
        super()._restore(path)


def _check_problem(folder: Path, problem: MultiTurnMenuProblem, strict: bool = True) -> dict[str, Any]:
    with open(folder / CONFIG_FILE) as fh:
        cfg = json.load(fh)
    saved = cfg.get("multiturn")
    if saved is None and not strict:  # a checkpoint written before problems were recorded
        warnings.warn(f"{folder} records no multi-turn problem; resuming without checking it", stacklevel=3)
        return cfg
    if saved is None:
        raise ValueError(f"{folder} holds a {cfg.get('class')} checkpoint without a multi-turn problem; "
                         "it was not written by a multi-turn trainer")
    if saved["fingerprint"] != problem.fingerprint():
        raise ValueError(f"{folder} was trained on a different problem ({saved['problem']} with "
                         f"{len(saved['tasks'])} tasks, first {saved['tasks'][:3]}) than the one given "
                         f"({type(problem).__name__} with {len(problem)} tasks, first "
                         f"{[getattr(t, 'id', None) for t in problem.tasks[:3]]}): the tasks or menus differ")
    return cfg


def multiturn_trainer(policy, problem: MultiTurnMenuProblem, judge, algorithm, *, exact: bool = False,
                      num_samples: int = 4, q: str = "one_step", terminal_judge=None,
                      **trainer_kwargs) -> MultiTurnTrainer:
    """A :class:`MultiTurnTrainer` on ``problem.first_states`` whose source is a :class:`MultiTurnMenuSource`.

    ``algorithm`` is a name or a :class:`SelfPlayAlgorithm` instance; ``q`` and
    ``terminal_judge`` select the Q (:class:`MultiTurnMenuSource`: ``"one_step"`` under
    ``judge``, or ``"terminal"`` under ``terminal_judge``); ``trainer_kwargs`` go to the
    trainer (optimiser, steps, seed, evaluator, ``output_dir``, ``resume_from``, algorithm
    hyper-parameters).
    """
    source = MultiTurnMenuSource(policy, problem, judge, exact=exact, num_samples=num_samples,
                                 batch_size=trainer_kwargs.get("logp_batch_size"), q=q,
                                 terminal_judge=terminal_judge)
    return MultiTurnTrainer(policy, judge, problem.first_states, algorithm, num_samples=max(2, num_samples),
                            source=source, **trainer_kwargs)


def load_multiturn_trainer(path: str | Path, problem: MultiTurnMenuProblem, judge, policy=None,
                           device: str | torch.device | None = None, terminal_judge=None,
                           **overrides) -> MultiTurnTrainer:
    """Rebuild a :class:`MultiTurnTrainer` and its source from a checkpoint (or ``save`` folder).

    Parameters
    ----------
    path
        A folder written by :meth:`SelfPlayTrainer.save`, a checkpoint, or an ``output_dir``
        (its latest checkpoint).
    problem
        The problem it was trained on: checked against the fingerprint saved in the checkpoint.
    judge
        The per-state judge.
    policy
        An :class:`~prefgym.llm.policy.LMPolicy` to load the weights into; default: built from
        the saved ``policy/`` folder.
    device
        Device of a newly built policy.
    terminal_judge
        The whole-episode judge, needed if the run used ``q="terminal"``.
    **overrides
        Replace saved trainer hyper-parameters (e.g. ``output_dir``).

    Raises
    ------
    ValueError
        If the checkpoint holds no multi-turn problem or another problem (tasks or menus differ),
        or it used ``q="terminal"`` and no ``terminal_judge`` is given.
    """
    from prefgym.agents.llm import trainer as _trainer

    folder = SelfPlayTrainer.resolve_checkpoint(path)
    cfg = _check_problem(folder, problem)
    algos = {**ALGORITHMS, OneStepMPOAlgorithm.name: OneStepMPOAlgorithm}
    if cfg["algorithm"] not in algos:
        raise ValueError(f"{folder} was trained with an unknown algorithm {cfg['algorithm']!r}")
    algorithm = algos[cfg["algorithm"]](**cfg["algorithm_hparams"])
    if policy is None:
        if cfg["hparams"].get("lora") is not None:
            raise ValueError(f"{folder} holds LoRA adapters only; pass the base policy (policy=...)")
        policy = _trainer._build_policy(folder, cfg["policy"], device)
    hparams = {k: v for k, v in cfg["hparams"].items() if k not in ("exact", "num_samples")}
    hparams["adam_betas"] = tuple(hparams["adam_betas"])
    hparams.update(overrides)
    mt = cfg["multiturn"]
    return multiturn_trainer(policy, problem, judge, algorithm, exact=mt["exact"],
                             num_samples=mt["num_samples"], q=mt.get("q", "one_step"),
                             terminal_judge=terminal_judge, resume_from=folder, **hparams)


# ============================================================================ exact evaluation
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
        lp = menu_log_probs(policy, states, menus, cache=cache, batch_size=batch_size).double().numpy()
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
