"""Multi-turn self-play on per-turn menus: a per-state response source for 001 Alg. 2.

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

from prefgym.agents.llm.multiturn.evaluation import (
    dialogue_win_rate,
    expected_correct,
    trajectory_distributions,
    trajectory_win_matrices,
)
from prefgym.agents.llm.multiturn.problem import (
    ACKNOWLEDGEMENTS,
    UNSURE,
    MultiTurnMenuProblem,
    dialogue_turn_menu,
)
from prefgym.agents.llm.multiturn.source import MultiTurnMenuSource, menu_log_probs
from prefgym.agents.llm.multiturn.training import (
    MultiTurnTrainer,
    OneStepMPOAlgorithm,
    load_multiturn_trainer,
    multiturn_trainer,
)

__all__ = [
    "ACKNOWLEDGEMENTS",
    "UNSURE",
    "dialogue_turn_menu",
    "MultiTurnMenuProblem",
    "MultiTurnMenuSource",
    "menu_log_probs",
    "OneStepMPOAlgorithm",
    "MultiTurnTrainer",
    "multiturn_trainer",
    "load_multiturn_trainer",
    "trajectory_distributions",
    "trajectory_win_matrices",
    "dialogue_win_rate",
    "expected_correct",
]
