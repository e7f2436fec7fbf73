"""Built-in tasks for training the language-model self-play trainers from the command line.

A task fixes what ``prefgym train --agent <name>-llm --task <task>`` trains on: the states
(prompts), the judge, how the policy's responses are formed, an evaluator logged at every
iteration, the trainer's default optimiser settings and the final evaluation of
``prefgym evaluate``. Each task is assembled from the pieces of a reproduction:

``menu``
    The menu game of ``llm-menu`` (:mod:`prefgym.reproductions.llm_menu`): 4 prompts, 3
    fixed responses, the non-transitive judge ``planted_nash(3, rank=1, seed=s)`` (a
    :class:`~prefgym.judges.TableJudge`). The policy is a
    :class:`~prefgym.agents.llm.menu.MenuPolicy`; the duality gap
    ``2 max_y P(y > pi) - 1`` per prompt is exact (main metric ``gap_mean``).
``bt-menu``
    SPO's Bradley-Terry task of ``llm-spo`` (:mod:`prefgym.reproductions.llm_spo`): 5 fixed
    responses with rewards ``(1, 0.5, 0, -0.5, -1)``. Exact duality gap as above; for the
    ``spo`` agent also ``KL(Softmax(r / alpha) || pi)``, 003 Thm 1's fixed point (then the
    main metric).
``dialogue``
    The 3-turn synthetic dialogues of ``llm-multiturn``
    (:mod:`prefgym.reproductions.llm_multiturn`): replies are *sampled* from the policy's
    per-turn menus at every state of a rollout
    (:class:`~prefgym.agents.llm.multiturn.MultiTurnMenuSource`) and judged by the exact
    ``DialogueTaskJudge(scope="last")``. Evaluation enumerates all dialogues: the exact win
    rate against the initial model under ``DialogueTaskJudge(scope="all")`` (main metric
    ``win_rate_vs_initial``) and the expected number of correct replies.
``reasoning``
    The 3-step arithmetic problems of ``llm-reasoning``
    (:mod:`prefgym.reproductions.llm_reasoning`): the same per-state training on step menus
    that depend on the policy's own earlier steps
    (:class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem`), judged per step by
    ``ArithmeticStepJudge``; evaluation under ``FinalAnswerJudge`` (``correct`` counts valid steps).

Every task also gives ``prefgym evaluate`` a *sampled* win rate against the initial model
(paired samples, Bernoulli outcomes, Wilson interval), the number a study on real text
would report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LLMTask", "TaskSetup", "LLM_TASKS", "get_task", "build_task"]


@dataclass
class TaskSetup:
    """A task instantiated on a policy: everything a trainer and an evaluation need.

    Attributes
    ----------
    policy
        What the trainer trains: a :class:`~prefgym.agents.llm.menu.MenuPolicy` or the
        :class:`~prefgym.llm.policy.LMPolicy` itself.
    judge
        The judge the trainer queries.
    prompts
        The trainer's states.
    evaluator
        ``evaluator(trainer) -> dict`` logged by the trainer after every iteration.
    make_trainer
        ``make_trainer(trainer_class, **kwargs) -> SelfPlayTrainer``.
    evaluate
        ``evaluate(policy, num_samples, seed) -> dict``: the final evaluation of a
        (reloaded) policy of the same kind as :attr:`policy`.
    metric, metric_label
        Main metric (a key of the evaluator's output) and its axis label.
    """

    policy: Any
    judge: Any
    prompts: list[str]
    evaluator: Callable[[Any], dict[str, float]]
    make_trainer: Callable[..., Any]
    evaluate: Callable[[Any, int, int], dict[str, Any]]
    metric: str
    metric_label: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LLMTask:
    """A built-in task: name, one-line description, defaults and builder.

    Attributes
    ----------
    name
        The ``--task`` name.
    description
        One line for ``prefgym list``.
    trainer_defaults_factory
        ``() -> dict`` of the trainer keyword arguments used unless ``--param`` / ``--lr``
        override them (:attr:`trainer_defaults`); a function, so that listing the tasks
        imports no torch.
    iterations
        Default number of iterations.
    build
        ``build(lm, algorithm, params) -> TaskSetup``; ``lm`` is the
        :class:`~prefgym.llm.policy.LMPolicy` (with its reference model, the initial
        policy), ``algorithm`` the ``LLM_AGENTS`` key, ``params`` the trainer keyword
        arguments (read for algorithm hyper-parameters a task depends on, e.g. SPO's ``alpha``).
    menu
        Whether the policy is a :class:`~prefgym.agents.llm.menu.MenuPolicy` (exact duality gap).
    """

    name: str
    description: str
    trainer_defaults_factory: Callable[[], dict[str, Any]]
    iterations: int
    build: Callable[[Any, str, dict[str, Any]], TaskSetup]
    menu: bool

    @property
    def trainer_defaults(self) -> dict[str, Any]:
        """Trainer keyword arguments used unless ``--param`` / ``--lr`` override them."""
        return self.trainer_defaults_factory()


# ------------------------------------------------------------------ evaluation helpers
def _wilson_from_probs(p: np.ndarray, seed: int) -> dict[str, Any]:
    """Bernoulli outcomes of judge probabilities ``p`` and Wilson's interval, as a dict."""
    from prefgym.evaluation import WinRate, wilson_interval

    p = np.asarray(p, dtype=np.float64).ravel()
    wins = float((np.random.default_rng(seed).random(p.shape) < p).sum())
    lo, hi = wilson_interval(wins, p.size)
    return WinRate(wins / p.size, lo, hi, int(p.size), "wilson").as_dict()


def _menu_setup(lm, responses, prompts, judge, target=None, info=None) -> TaskSetup:
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.evaluation import menu_evaluator, menu_game, win_rate_vs_initial

    menu = MenuPolicy(lm, responses)
    prompts = list(prompts)
    evaluator = menu_evaluator(menu, judge, prompts, target=target)
    game = menu_game(judge, responses, prompts)

    def make_trainer(cls, **kw):
        return cls(menu, judge, prompts, evaluator=evaluator, **kw)

    def evaluate(policy, num_samples: int, seed: int) -> dict[str, Any]:
        from prefgym.evaluation import kl_divergence

        pi = policy.probs(prompts)
        ref = policy.probs(prompts, reference=True)
        gap, gap0 = game.duality_gap(pi), game.duality_gap(ref)
        ne = game.nash_equilibrium()
        exact_wr = np.einsum("bi,bij,bj->b", pi, game.preference, ref)
        sampled = win_rate_vs_initial(policy, judge, prompts, num_samples=num_samples, seed=seed,
                                      bernoulli=True)
        out = {
            "win_rate_vs_initial": sampled.as_dict(),
            "exact_win_rate_vs_initial": float(exact_wr.mean()),
            "gap_mean": float(gap.mean()), "gap_max": float(gap.max()), "gap_per_prompt": gap.tolist(),
            "initial_gap_mean": float(gap0.mean()),
            "l1_to_nash_mean": float(np.abs(pi - ne).sum(-1).mean()),
            "responses": list(responses), "probs": pi.tolist(), "nash_equilibrium": ne.tolist(),
        }
        if target is not None:
            kl = kl_divergence(np.broadcast_to(target, pi.shape), pi)
            out["kl_target_mean"], out["kl_target_max"] = float(kl.mean()), float(kl.max())
            out["target"] = np.asarray(target).tolist()
        return out

    metric, label = ("gap_mean", "exact duality gap (mean over prompts)")
    if target is not None:
        metric, label = "kl_target_mean", "KL(Softmax(r/alpha) || pi), mean over prompts"
    return TaskSetup(menu, judge, prompts, evaluator, make_trainer, evaluate, metric, label, info or {})


# ------------------------------------------------------------------ the tasks
def _build_menu(lm, algorithm: str, params: dict[str, Any]) -> TaskSetup:
    from prefgym.judges import TableJudge
    from prefgym.reproductions.llm_menu import PROMPTS, RESPONSES, choose_game

    game, seed, ne = choose_game()
    judge = TableJudge.from_preference(game.preference, list(RESPONSES))
    info = {"game": f"planted_nash(3, rank=1, seed={seed})", "nash_equilibrium": ne.tolist()}
    return _menu_setup(lm, RESPONSES, PROMPTS, judge, info=info)


def _build_bt_menu(lm, algorithm: str, params: dict[str, Any]) -> TaskSetup:
    from prefgym.agents.llm.algorithms import SPOAlgorithm
    from prefgym.judges import TableJudge
    from prefgym.reproductions.llm_menu import PROMPTS
    from prefgym.reproductions.llm_spo import RESPONSES, REWARDS, target

    judge = TableJudge(dict(zip(RESPONSES, REWARDS, strict=True)), temperature=1.0)
    tgt, info = None, {"rewards": list(REWARDS)}
    if algorithm == SPOAlgorithm.name:
        alpha = float(params.get("alpha", SPOAlgorithm.alpha))
        tgt = target(alpha)
        info["target"] = f"Softmax(r / {alpha:g})"
    return _menu_setup(lm, RESPONSES, PROMPTS, judge, target=tgt, info=info)


def _multiturn_setup(lm, problem, judge, final_judge, info: dict[str, Any]) -> TaskSetup:
    """A per-turn menu problem (dialogue or reasoning): exact episode win rate vs the initial model.

    ``judge`` compares the replies of one turn (the trainer's per-state Q, 001 Alg. 2);
    ``final_judge`` compares whole episodes (the evaluation).
    """
    from prefgym.agents.llm.multiturn import (
        dialogue_win_rate,
        expected_correct,
        multiturn_trainer,
        trajectory_distributions,
        trajectory_win_matrices,
    )
    from prefgym.agents.llm.trainer import policy_view

    win = trajectory_win_matrices(problem, final_judge)
    p0 = trajectory_distributions(policy_view(lm, lm.reference_model), problem)

    def evaluator(trainer=None) -> dict[str, float]:
        # the untrained policy (the trainer's initial evaluation) is the initial model: reuse p0
        p = p0 if _same_weights(lm.model, lm.reference_model) else trajectory_distributions(lm, problem)
        return {"win_rate_vs_initial": float(dialogue_win_rate(p, p0, win).mean()),
                "correct": float(expected_correct(p, problem).mean())}

    def make_trainer(cls, **kw):
        name = cls.algorithm_class.name
        num_samples = kw.pop("num_samples", 5)
        if name == "ompo" and "log_z" not in kw:  # one-step Q: tie value 1/2 (llm-multiturn)
            kw["log_z"] = float(kw.get("beta", 1.0)) / 2
        return multiturn_trainer(lm, problem, judge, name, num_samples=num_samples,
                                 evaluator=evaluator, **kw)

    def evaluate(policy, num_samples: int, seed: int) -> dict[str, Any]:
        p = trajectory_distributions(policy, problem)
        # the initial model's dialogues: already enumerated when ``policy`` is the one the task was built on
        q = p0 if policy is lm else trajectory_distributions(policy_view(policy, policy.reference_model),
                                                             problem)
        rng = np.random.default_rng(seed)
        probs = []
        for i in range(len(problem)):  # paired dialogues of the policy and of the initial model
            a = rng.choice(p.shape[1], size=num_samples, p=p[i])
            b = rng.choice(q.shape[1], size=num_samples, p=q[i])
            probs.append(win[i, a, b])
        return {
            "win_rate_vs_initial": _wilson_from_probs(np.concatenate(probs), seed + 1),
            "exact_win_rate_vs_initial": float(dialogue_win_rate(p, q, win).mean()),
            "correct": float(expected_correct(p, problem).mean()),
            "initial_correct": float(expected_correct(q, problem).mean()),
            "tasks": len(problem), "horizon": problem.horizon,
        }

    return TaskSetup(lm, judge, problem.first_states, evaluator, make_trainer, evaluate,
                     "win_rate_vs_initial", "exact win rate vs the initial model", info)


def _build_dialogue(lm, algorithm: str, params: dict[str, Any]) -> TaskSetup:
    from prefgym.agents.llm.multiturn import MultiTurnMenuProblem
    from prefgym.judges.tasks import DialogueTaskJudge
    from prefgym.reproductions.llm_multiturn import EPS, dialogue_tasks

    train, _ = dialogue_tasks(quick=False)
    problem = MultiTurnMenuProblem(train)
    info = {"tasks": [t.id for t in train], "horizon": problem.horizon, "judge_eps": EPS}
    return _multiturn_setup(lm, problem, DialogueTaskJudge(train, eps=EPS, scope="last"),
                            DialogueTaskJudge(train, eps=EPS, scope="all"), info)


def _build_reasoning(lm, algorithm: str, params: dict[str, Any]) -> TaskSetup:
    from prefgym.agents.llm.reasoning_menu import ReasoningMenuProblem
    from prefgym.judges.tasks import ArithmeticStepJudge, FinalAnswerJudge
    from prefgym.reproductions.llm_reasoning import EPS, reasoning_tasks

    train, _ = reasoning_tasks(quick=False)
    problem = ReasoningMenuProblem(train)
    info = {"tasks": [t.id for t in train], "horizon": problem.horizon, "judge_eps": EPS}
    return _multiturn_setup(lm, problem, ArithmeticStepJudge(eps=EPS, grounded=True),
                            FinalAnswerJudge(problem.tasks, eps=EPS), info)


def _same_weights(a, b) -> bool:
    """Whether two models hold equal parameters (same names, values)."""
    import torch

    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    with torch.no_grad():
        return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def _menu_optim() -> dict[str, Any]:
    from prefgym.reproductions.llm_menu import OPTIM

    return dict(OPTIM)


def _dialogue_optim() -> dict[str, Any]:
    from prefgym.reproductions.llm_multiturn import OPTIM

    return {**OPTIM, "steps_per_iteration": 20, "num_samples": 5}


#: ``--task`` name -> :class:`LLMTask`
LLM_TASKS: dict[str, LLMTask] = {
    "menu": LLMTask("menu", "llm-menu's non-transitive menu game (3 responses, 4 prompts), exact duality gap",
                    _menu_optim, 100, _build_menu, menu=True),
    "bt-menu": LLMTask("bt-menu", "llm-spo's Bradley-Terry menu (5 responses), exact gap; spo: KL to "
                       "Softmax(r/alpha)", _menu_optim, 100, _build_bt_menu, menu=True),
    "dialogue": LLMTask("dialogue", "llm-multiturn's 3-turn synthetic dialogues, replies sampled per turn, "
                        "exact win rate vs the initial model", _dialogue_optim, 3, _build_dialogue,
                        menu=False),
    "reasoning": LLMTask("reasoning", "llm-reasoning's 3-step arithmetic, step menus built on the policy's "
                         "own steps, exact final-answer win rate vs the initial model", _dialogue_optim, 3,
                         _build_reasoning, menu=False),
}


def get_task(name: str) -> LLMTask:
    """Look a task up by name (case-insensitive, ``-`` or ``_``)."""
    key = name.lower().replace("_", "-")
    if key not in LLM_TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(LLM_TASKS)}")
    return LLM_TASKS[key]


def build_task(name: str, lm, algorithm: str, params: dict[str, Any]) -> TaskSetup:
    """:meth:`LLMTask.build` of task ``name`` on ``lm`` (which must carry a reference model)."""
    if getattr(lm, "reference_model", None) is None:
        raise ValueError("the task needs a policy with a reference model (the initial policy)")
    return get_task(name).build(lm, algorithm, dict(params))
