"""Multi-turn self-play on per-turn menus: a per-state response source for 001 Alg. 2 (issue #5, item 4).

Setting. A dialogue task (:class:`~prefgym.data.dialogue.DialogueTask`) has user turns
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

Hook. :func:`multiturn_trainer` builds a
:class:`~prefgym.agents.llm.trainer.SelfPlayTrainer` on the underlying
:class:`~prefgym.llm.policy.LMPolicy` and hands it this source through ``source=``.
The trainer's prompts are the tasks' first states ``s_1``.

Evaluation is exact: :func:`trajectory_distributions` enumerates the ``N^H`` dialogues of
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

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from prefgym.agents.llm.algorithms import SelfPlayAlgorithm, SelfPlayBatch
from prefgym.agents.llm.losses import mpo_regression_loss
from prefgym.agents.llm.trainer import ResponseSource, SelfPlayTrainer, leave_one_out_weights
from prefgym.data.dialogue import DialogueTask, parse_dialogue_transcript
from prefgym.llm.base import ASSISTANT, USER, format_dialogue

__all__ = [
    "ACKNOWLEDGEMENTS",
    "UNSURE",
    "dialogue_turn_menu",
    "MultiTurnMenuProblem",
    "MultiTurnMenuSource",
    "OneStepMPOAlgorithm",
    "multiturn_trainer",
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
    """Tasks, their per-turn menus, and the states and transcripts of their dialogues.

    Parameters
    ----------
    tasks
        Dialogue tasks with the same horizon ``H`` and distinct first messages.
    menu
        ``menu(task, h) -> replies`` (default :func:`dialogue_turn_menu`); every turn of
        every task must have the same number ``N`` of distinct replies.
    """

    def __init__(self, tasks: Sequence[DialogueTask],
                 menu: Callable[[DialogueTask, int], Sequence[str]] = dialogue_turn_menu):
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("a problem needs at least one task")
        horizons = {t.horizon for t in self.tasks}
        if len(horizons) != 1:
            raise ValueError(f"all tasks must have the same horizon; got {sorted(horizons)}")
        self.horizon = horizons.pop()
        self.menus = [[tuple(menu(t, h)) for h in range(1, self.horizon + 1)] for t in self.tasks]
        sizes = {len(m) for ms in self.menus for m in ms}
        if len(sizes) != 1 or min(sizes) < 2:
            raise ValueError(f"every turn menu needs the same size N >= 2; got sizes {sorted(sizes)}")
        if any(len(set(m)) != len(m) for ms in self.menus for m in ms):
            raise ValueError("turn menus must hold distinct replies")
        self.n = sizes.pop()
        self.first_states = [self.state(i, ()) for i in range(len(self.tasks))]
        if len(set(self.first_states)) != len(self.first_states):
            raise ValueError("tasks must have distinct first messages")
        self._by_first = {f"{USER}: {t.turns[0]}\n{ASSISTANT}:": i for i, t in enumerate(self.tasks)}

    def __len__(self) -> int:
        return len(self.tasks)

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

    def menu_at(self, i: int, h: int) -> tuple[str, ...]:
        """The menu of turn ``h`` (1-based) of task ``i``."""
        return self.menus[i][h - 1]


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
    """

    def __init__(self, policy, problem: MultiTurnMenuProblem, judge, exact: bool = False,
                 num_samples: int = 4, batch_size: int | None = None):
        if not exact and int(num_samples) < 2:
            raise ValueError(f"sampling needs num_samples >= 2; got {num_samples}")
        self.policy, self.problem, self.judge = policy, problem, judge
        self.exact, self.k, self.batch_size = bool(exact), int(num_samples), batch_size
        self._ids: dict[str, Tensor] = {}
        self._win_cache: dict[tuple[int, tuple[str, ...]], Tensor] = {}

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
            menu = self.problem.menu_at(i, h)
            ctx = self.problem.context(i, h)
            texts = [self.problem.transcript(i, [*replies, y]) for y in menu]
            pairs = list(itertools.product(range(len(menu)), repeat=2))
            p = self.judge.prob([ctx] * len(pairs), [texts[a] for a, _ in pairs],
                                [texts[b] for _, b in pairs])
            n = len(menu)
            self._win_cache[key] = torch.as_tensor(np.asarray(p), dtype=torch.float32).reshape(n, n)
        return self._win_cache[key]

    # ------------------------------------------------------------ ResponseSource API
    def collect(self, prompts, seed):
        prob, H, N = self.problem, self.problem.horizon, self.problem.n
        tasks = [prob.locate(p)[0] for p in prompts]
        gen = torch.Generator().manual_seed(int(seed))
        replies: list[list[str]] = [[] for _ in tasks]
        rows = []  # (task, earlier replies, h, state, menu, menu log-probs, indices)
        for h in range(1, H + 1):
            states = [prob.state(i, r) for i, r in zip(tasks, replies, strict=True)]
            menus = [prob.menu_at(i, h) for i in tasks]
            lp = self._lp(states, menus)
            if self.exact:
                idx = torch.arange(N).expand(len(tasks), N)
                act = torch.multinomial(lp.double().exp(), 1, generator=gen)[:, 0]
            else:
                idx = torch.multinomial(lp.double().exp(), self.k, replacement=True, generator=gen)
                act = idx[:, 0]  # the main rollout continues with the first sample (001 Alg. 2)
            for b, i in enumerate(tasks):
                rows.append((i, list(replies[b]), h, states[b], menus[b], lp[b], idx[b]))
            for b in range(len(tasks)):
                replies[b].append(menus[b][int(act[b])])
        full_w = torch.stack([self._menu_win(i, r) for i, r, *_ in rows])
        menu_lp = torch.stack([row[5] for row in rows])
        idx = torch.stack([row[6] for row in rows])
        W = torch.stack([full_w[j][idx[j]][:, idx[j]] for j in range(len(rows))])
        if self.exact:
            weights = menu_lp.exp()
            win_rate = (full_w @ weights[..., None])[..., 0]
        else:
            weights = None
            win_rate = (W.sum(-1) - torch.diagonal(W, dim1=-2, dim2=-1)) / (self.k - 1)
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
        batch.extra.update(menu_logp=menu_lp, menu_win_matrix=full_w, menus=[row[4] for row in rows])
        return batch

    def logp(self, batch, requires_grad=False, policy=None):
        lp = self._lp(batch.prompts, batch.extra["menus"], policy=policy, requires_grad=requires_grad)
        return lp.gather(-1, batch.menu_index.to(lp.device))

    def win_rates_against(self, batch, opponent, seed, greedy=False):
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

    def win_rates_mixture(self, batch, log_weights):
        if batch.exact:
            q = torch.softmax(log_weights.float(), dim=-1)
            return (batch.win_matrix @ q[..., None])[..., 0]
        w = leave_one_out_weights((log_weights - batch.old_logp).float())
        return (batch.win_matrix * w).sum(-1)

    def predict(self, prompts, deterministic, seed):
        located = [self.problem.locate(p) for p in prompts]
        menus = [self.problem.menu_at(i, len(r) + 1) for i, r in located]
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


def multiturn_trainer(policy, problem: MultiTurnMenuProblem, judge, algorithm, *, exact: bool = False,
                      num_samples: int = 4, **trainer_kwargs) -> SelfPlayTrainer:
    """A :class:`SelfPlayTrainer` on ``problem.first_states`` whose source is a :class:`MultiTurnMenuSource`.

    ``algorithm`` is a name or a :class:`SelfPlayAlgorithm` instance; ``trainer_kwargs`` go
    to the trainer (optimiser, steps, seed, evaluator, algorithm hyper-parameters).
    """
    source = MultiTurnMenuSource(policy, problem, judge, exact=exact, num_samples=num_samples,
                                 batch_size=trainer_kwargs.get("logp_batch_size"))
    return SelfPlayTrainer(policy, judge, problem.first_states, algorithm, num_samples=max(2, num_samples),
                           source=source, **trainer_kwargs)


# ============================================================================ exact evaluation
def trajectory_distributions(policy, problem: MultiTurnMenuProblem,
                             batch_size: int | None = None) -> np.ndarray:
    """Probabilities of all ``N^H`` dialogues of every task, ``(tasks, N^H)`` float64.

    Dialogue ``j`` picks menu item ``digits_N(j)[h-1]`` at turn ``h`` (most significant first).
    """
    N, H, T = problem.n, problem.horizon, len(problem)
    cache: dict[str, Tensor] = {}
    prefixes: list[tuple[int, ...]] = [()]
    logp = np.zeros((T, 1))
    for h in range(1, H + 1):
        states, menus = [], []
        for i in range(T):
            for pre in prefixes:
                states.append(problem.state(i, [problem.menu_at(i, k + 1)[c] for k, c in enumerate(pre)]))
                menus.append(problem.menu_at(i, h))
        lp = menu_log_probs(policy, states, menus, cache=cache, batch_size=batch_size).double().numpy()
        lp = lp.reshape(T, len(prefixes), N)
        logp = (logp[:, :, None] + lp).reshape(T, -1)
        prefixes = [(*pre, c) for pre in prefixes for c in range(N)]
    p = np.exp(logp)
    return p / p.sum(-1, keepdims=True)


def trajectory_win_matrices(problem: MultiTurnMenuProblem, judge) -> np.ndarray:
    """``P(dialogue a > dialogue b)`` for every task under a whole-dialogue judge, ``(tasks, N^H, N^H)``.

    ``judge`` compares closed transcripts of all ``H`` turns in the context ``task.context(H)``
    (e.g. ``DialogueTaskJudge(tasks, scope="all")``).
    """
    N, H = problem.n, problem.horizon
    combos = list(itertools.product(range(N), repeat=H))
    out = []
    for i in range(len(problem)):
        texts = [problem.transcript(i, [problem.menu_at(i, h + 1)[c] for h, c in enumerate(cb)])
                 for cb in combos]
        M = len(texts)
        a = [texts[x] for x in range(M) for _ in range(M)]
        b = [texts[y] for _ in range(M) for y in range(M)]
        out.append(np.asarray(judge.prob([problem.context(i, H)] * len(a), a, b)).reshape(M, M))
    return np.stack(out)


def dialogue_win_rate(p: np.ndarray, q: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Exact ``P(dialogue ~ p > dialogue ~ q)`` per task, ``(tasks,)``."""
    return np.einsum("ti,tij,tj->t", p, win, q)


def expected_correct(p: np.ndarray, problem: MultiTurnMenuProblem) -> np.ndarray:
    """Expected number of correct replies per dialogue (``reply_correct`` at every turn), ``(tasks,)``."""
    N, H = problem.n, problem.horizon
    combos = list(itertools.product(range(N), repeat=H))
    out = []
    for i, t in enumerate(problem.tasks):
        score = np.array([sum(t.reply_correct(h + 1, problem.menu_at(i, h + 1)[c]) for h, c in enumerate(cb))
                          for cb in combos], dtype=float)
        out.append(float(p[i] @ score))
    return np.asarray(out)
