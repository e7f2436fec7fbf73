"""The per-state response source of 001 Alg. 2 on a :class:`MultiTurnMenuProblem` (one-step or terminal Q)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from prefgym.agents.llm.algorithms import SelfPlayBatch
from prefgym.agents.llm.multiturn.problem import MultiTurnMenuProblem
from prefgym.agents.llm.trainer import ResponseSource


def _reply_ids(policy, reply: str, cache: dict[str, Tensor], prefix: str = " ") -> Tensor:
    text = prefix + reply
    if text not in cache:
        tok = policy.tokenizer
        eos = list(policy.eos_token_ids[:1]) if policy.eos_token_ids else []
        cache[text] = torch.tensor(list(tok(text, add_special_tokens=False)["input_ids"]) + eos,
                                   dtype=torch.long)
    return cache[text]


def menu_log_probs(policy, states: Sequence[str], menus: Sequence[Sequence[str]], requires_grad: bool = False,
                   cache: dict[str, Tensor] | None = None, batch_size: int | None = None,
                   prefixes: Sequence[str] | None = None) -> Tensor:
    """``log pi(y_i | s_b)`` renormalised over each state's own menu, ``(B, N)`` (one batched pass).

    Each reply is scored as ``prefix + reply + EOS`` after the open state, ``prefixes[b]``
    being the state's :meth:`MultiTurnMenuProblem.reply_prefix` (default ``" "``: a dialogue
    transcript's ``"Assistant: reply"``; a reasoning state puts ``"\\n"`` before its later
    steps), so the scored text is the next state's. The logit of a reply is its LM sequence
    log-prob relative to a uniform-token model, ``log pi_LM(y | s) + |y| log V`` (``V`` the
    tokenizer's size): a fixed offset per reply that leaves every gradient unchanged, so
    that a random-init LM starts near uniform over replies of different token lengths
    (``llm-menu`` gets the same by giving its replies equal lengths; without it the
    shortest reply takes almost all the mass).
    """
    cache = {} if cache is None else cache
    n = len(menus[0])
    rows_p = [s for s in states for _ in range(n)]
    prefixes = [" "] * len(states) if prefixes is None else list(prefixes)
    if len(prefixes) != len(states):
        raise ValueError(f"{len(prefixes)} prefixes for {len(states)} states")
    rows_r = [_reply_ids(policy, r, cache, pre) for m, pre in zip(menus, prefixes, strict=True) for r in m]
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
        Per-state pairwise judge on (``problem.context(i, h)``, ``problem.transcript`` of the
        replies ``1..h``), e.g. ``DialogueTaskJudge(tasks, scope="last")`` or ``ArithmeticStepJudge``.
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
        ``terminal_judge`` with ``q="one_step"``), or ``num_samples < 2`` when sampling;
        :meth:`collect` on a prompt that is not a first state ``s_1``.
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
        prefixes = [self.problem.reply_prefix(s) for s in states]
        return menu_log_probs(pol, states, menus, requires_grad=requires_grad, cache=self._ids,
                              batch_size=self.batch_size, prefixes=prefixes)

    def _menu_wins(self, tasks: Sequence[int], prefixes: Sequence[Sequence[str]]) -> Tensor:
        """``P([s_h, y_a] > [s_h, y_b])`` on the menu of each state ``(task, earlier replies)``, (R, N, N).

        One judge call for all the states not judged before.
        """
        keys = [(int(i), tuple(r)) for i, r in zip(tasks, prefixes, strict=True)]
        new = [k for k in dict.fromkeys(keys) if k not in self._win_cache]
        if new:
            N = self.problem.n
            ctx, a, b = [], [], []
            for i, replies in new:
                c = self.problem.context(i, len(replies) + 1)
                texts = [self.problem.transcript(i, [*replies, y]) for y in self.problem.menu_at(i, replies)]
                for x, y in itertools.product(range(N), repeat=2):
                    ctx.append(c)
                    a.append(texts[x])
                    b.append(texts[y])
            p = torch.as_tensor(np.asarray(self.judge.prob(ctx, a, b)), dtype=torch.float32)
            self._win_cache.update(zip(new, p.reshape(len(new), N, N).unbind(0), strict=True))
        return torch.stack([self._win_cache[k] for k in keys])

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
        W = self._episode_win([i for i, eps in zip(tasks, nodes, strict=True) for _ in range(len(eps) ** 2)],
                              [a for eps in nodes for a in eps for _ in eps],
                              [b for eps in nodes for _ in eps for b in eps])  # one judge call for all states
        out, pos = [], 0
        for eps, po, pt in zip(nodes, ours, theirs, strict=True):
            M, m = len(eps), len(eps) // N
            out.append(np.einsum("ac,acbd,bd->ab", po, W[pos:pos + M * M].reshape(N, m, N, m), pt))
            pos += M * M
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
        located = [prob.locate(p) for p in prompts]
        if any(r for _, r in located):
            raise ValueError("collect rolls out whole episodes: prompts must be first states s_1 "
                             "(problem.first_states), not states after earlier replies")
        tasks = [i for i, _ in located]
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
            full_w = self._menu_wins(row_tasks, [row[1] for row in rows])
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
            response_ids=[[_reply_ids(self.policy, row[4][k], self._ids, self.problem.reply_prefix(row[3]))
                           for k in row[6].tolist()] for row in rows],
            texts=[[row[4][k] for k in row[6].tolist()] for row in rows],
            old_logp=menu_lp.gather(-1, idx), ref_logp=None, win_matrix=W, win_rate=win_rate,
            weights=weights, menu_index=idx, steps=torch.tensor([float(row[2]) for row in rows]))
        batch.extra.update(menu_logp=menu_lp, menu_win_matrix=full_w, menus=[row[4] for row in rows],
                           tasks=row_tasks, prefixes=[tuple(row[1]) for row in rows], q=self.q, **extra)
        return batch

    def logp(self, batch, requires_grad=False, policy=None, mask=None):
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
        return super().win_rates_mixture(batch, log_weights)

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
