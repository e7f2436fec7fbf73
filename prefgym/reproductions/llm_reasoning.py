"""Arithmetic reasoning on a tiny LM: OMPO and MPO raise the win rate over the base model.

The shape of 001 Tables 2-3 at toy scale, on step-by-step arithmetic (001 Example 2):
per-iteration win rates against the base (iteration-0) model for 3 iterations of OMPO
(001 Alg. 2) and MPO (001 Alg. 4).

Setting. The training tasks are the first 16 two-equation word problems of
``make_arithmetic_tasks(seed=0, min_events=2, max_events=2)``
(:func:`~prefgym.agents.llm.reasoning_menu.arithmetic_menu_tasks`); 16 of ``seed=1`` with
other questions are held out (reported only). A solution has ``H = 3`` steps: two
equations and an ``"Answer: v"`` line. At each step the policy picks one of 3 lines
(:class:`~prefgym.agents.llm.reasoning_menu.ReasoningMenuProblem`): the correct next step
computed from the values *it wrote* on its earlier lines (so an earlier mistake changes
the correct next step, as ``ScriptedSolver`` propagates its own), an arithmetic slip
(right side + 1) and a misread operand (a true equation on an ungrounded number). The
state is the ``Reasoning-v0`` observation ``format_reasoning(question, steps so far)``;
the policy is an LM's sequence probabilities renormalised over the state's menu
(:class:`~prefgym.agents.llm.multiturn.MultiTurnMenuSource`), the random-init tiny GPT-2
of ``llm-menu`` / ``llm-multiturn`` (2 layers, width 64), one run per model seed 0, 1, 2.

Training (001 Alg. 2 / 4, one-step Q): per iteration one rollout of ``pi_t`` per task; at
every visited state ``K = 5`` steps drawn from ``pi_t`` and judged pairwise by the exact
step verifier ``ArithmeticStepJudge(eps=0.1)`` (``Reasoning-v0``'s intermediate
preference; context the question, responses the lines so far). OMPO regresses
``log pi/pi_t`` on ``beta (2 P(a > pi_t) - P(a > pi_{t-1})) - beta/2``, MPO on
``beta (P(a > pi_t) - 1/2)``. All hyper-parameters are ``llm-multiturn``'s, reused
unchanged and not tuned here: ``beta = 0.7``, AdamW, learning rate 1e-4, 20 optimiser steps
per iteration, clipping at 1, ``K = 5``, trainer seed 0.

Evaluation is exact: all ``3^3 = 27`` solutions of every task are enumerated with their
probabilities (the menus of later steps follow each solution's own earlier lines), and
the win rate ``P(policy's solution > base's solution)`` is computed in closed form under
the whole-solution judge ``FinalAnswerJudge(eps=0.1)`` (001 G.2's terminal preference:
the correct final answer wins); the base model's is 50%. Also reported: the exact
accuracy ``P(final answer correct)`` (with these menus: every line valid) and the expected
number of valid steps out of 3.

Claims and criteria, fixed before the full run (written before any training run of
this module): OMPO and MPO each raise the win rate over the base model at iteration 3
(exact train-task win rate > 50% for every model seed 0, 1, 2). OMPO >= MPO is reported,
not asserted. Only the quick variant (1 model seed, 4 tasks, 5 steps per iteration; now 2 tasks
and 3 steps, to fit a test) was run before the full run, to time it and check the outputs.

Terminal-preference arms (added later; pre-registered here before their full run). Two
more arms, ``ompo_terminal`` and ``mpo_terminal``: OMPO and MPO trained with a *terminal*
Q, 001 G.2's setting for math (a terminal reward only). The Q of a step ``a`` at a visited
state ``s_h`` compares whole solutions: each of the ``K = 5`` steps is continued to the
answer line by ``pi_t`` (the first by the main rollout, 001 Alg. 2) and
``FinalAnswerJudge(eps=0.1)`` compares the closed solutions; ``Q-hat(s_h, a)`` is the
leave-one-out win rate of its solution among the state's ``K``. OMPO's second term
continues ``K`` steps of ``pi_{t-1}`` at the same state by ``pi_{t-1}`` (``Q^{pi_t,
pi_{t-1}}``, 001 Eq. 2; :class:`~prefgym.agents.llm.multiturn.MultiTurnMenuSource` with
``q="terminal"``). The tie value is still 1/2, so ``log Z = beta / 2``; everything else
(model seeds, tasks, ``beta``, optimiser, steps, ``K``, trainer seed, evaluation) is the
one-step arms' setting, unchanged, and the one-step arms' numbers are unchanged (same
seeds). Claim, criterion fixed before the full run: OMPO and MPO with a terminal preference
each raise the exact final-answer win rate over the base model at iteration 3 (train
tasks, every model seed 0, 1, 2: win rate > 50%). Terminal vs intermediate (001 Table 7:
negligible difference for MPO) is reported, not asserted. Before the full run only the unit
tests and the quick variant were run with these arms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefgym.reproductions.analysis import verdict
from prefgym.reproductions.llm_multiturn import BETA, MODEL, OPTIM, _train_arms, _write_win_rate_outputs
from prefgym.reproductions.registry import Reproduction

__all__ = ["REPRODUCTION", "run", "reasoning_tasks", "SETTINGS", "ARMS"]

EQUATIONS, EPS = 2, 0.1
SETTINGS = {
    False: {"model_seeds": (0, 1, 2), "train_tasks": 16, "heldout_tasks": 16, "num_samples": 5,
            "steps_per_iteration": 20, "iterations": 3},
    True: {"model_seeds": (0,), "train_tasks": 2, "heldout_tasks": 2, "num_samples": 3,
           "steps_per_iteration": 3, "iterations": 3},
}
ALGOS = ("ompo", "mpo")
#: arm -> (algorithm, Q): the one-step arms (intermediate preference) and the terminal-preference arms
ARMS = {"ompo": ("ompo", "one_step"), "mpo": ("mpo", "one_step"),
        "ompo_terminal": ("ompo", "terminal"), "mpo_terminal": ("mpo", "terminal")}
SEED = 0


def reasoning_tasks(quick: bool = False):
    """(train, held-out) two-equation arithmetic tasks (see the module docstring)."""
    from prefgym.agents.llm.reasoning_menu import arithmetic_menu_tasks

    cfg = SETTINGS[bool(quick)]
    train = arithmetic_menu_tasks(cfg["train_tasks"], seed=0, equations=EQUATIONS)
    held = arithmetic_menu_tasks(cfg["heldout_tasks"], seed=1, equations=EQUATIONS,
                                 exclude=[t.question for t in train])
    return train, held


def _evaluate(lm, sets):
    from prefgym.agents.llm.multiturn import dialogue_win_rate, expected_correct, trajectory_distributions
    from prefgym.agents.llm.reasoning_menu import final_answer_accuracy

    out = {}
    for key, (problem, win, p0) in sets.items():
        p = trajectory_distributions(lm, problem)
        out[f"{key}_win_rate"] = float(dialogue_win_rate(p, p0, win).mean())
        out[f"{key}_accuracy"] = float(final_answer_accuracy(p, problem).mean())
        out[f"{key}_valid_steps"] = float(expected_correct(p, problem).mean())
    return out


def run(out_dir: Path, quick: bool = False, progress: bool = True) -> dict:
    """Run the experiment; see the module docstring."""
    from prefgym.agents.llm.multiturn import expected_correct, trajectory_win_matrices
    from prefgym.agents.llm.reasoning_menu import ReasoningMenuProblem, final_answer_accuracy
    from prefgym.judges.tasks import ArithmeticStepJudge, FinalAnswerJudge

    cfg = SETTINGS[bool(quick)]
    train, held = reasoning_tasks(quick)
    problems = {"train": ReasoningMenuProblem(train), "heldout": ReasoningMenuProblem(held)}
    step_judge = ArithmeticStepJudge(eps=EPS, grounded=True)
    wins = {k: trajectory_win_matrices(p, FinalAnswerJudge(p.tasks, eps=EPS)) for k, p in problems.items()}
    terminal_judge = FinalAnswerJudge(problems["train"].tasks, eps=EPS)  # 001 G.2: terminal preference
    arms = {arm: (algo, q, terminal_judge if q == "terminal" else None) for arm, (algo, q) in ARMS.items()}

    def base_metrics(p0, p):
        return {"accuracy": final_answer_accuracy(p0, p).mean(),
                "valid_steps": expected_correct(p0, p).mean()}

    def detail(row, base):
        return f"; accuracy {row['train_accuracy']:.4f} (base {base['train_accuracy'][-1]:.4f})"

    runs, base = _train_arms("llm-reasoning", cfg, problems, wins, step_judge, arms, _evaluate, base_metrics,
                            progress, detail=detail)
    summary = _summarise(runs, base, cfg, train, held)
    summary["files"] = _write_outputs(out_dir, runs)
    return summary


KEYS = ("train_win_rate", "heldout_win_rate", "train_accuracy", "heldout_accuracy", "train_valid_steps",
        "heldout_valid_steps")


def _summarise(runs, base, cfg, train, held) -> dict:
    table = {}
    for arm in ARMS:
        entry = {}
        for key in KEYS:
            arr = np.asarray([[r[key] for r in rows] for rows in runs[arm].values()])  # (seeds, T)
            entry[key] = {"per_seed": arr, "mean": arr.mean(0), "std": arr.std(0)}
        entry["time_s"] = float(sum(r["time_s"] for rows in runs[arm].values() for r in rows))
        table[arm] = entry
    final = {a: table[a]["train_win_rate"]["per_seed"][:, -1] for a in ARMS}
    verdicts = {}
    old_claim = "raises the win rate over the base model after 3 iterations"  # the one-step arms' wording
    for arm, label, what in (
            ("ompo", "OMPO (001 Alg. 2, one-step Q)", old_claim),
            ("mpo", "MPO (001 Alg. 4, one-step Q)", old_claim),
            ("ompo_terminal", "OMPO with a terminal preference (001 Alg. 2, terminal Q, 001 G.2)",
             "raises the exact final-answer win rate over the base model at iteration 3"),
            ("mpo_terminal", "MPO with a terminal preference (001 Alg. 4, terminal Q, 001 G.2)",
             "raises the exact final-answer win rate over the base model at iteration 3")):
        wr = table[arm]["train_win_rate"]
        verdicts[f"{label} {what}"] = verdict(
            bool((final[arm] > 0.5).all()),
            "exact final-answer win rate vs the base model on the training tasks, mean over model seeds "
            "per iteration " + ", ".join(f"iter {t + 1}: {m:.4f}" for t, m in enumerate(wr["mean"]))
            + f"; iteration 3 per seed {np.round(final[arm], 4).tolist()} (criterion: > 0.5 for every seed)")
    comparison = {
        "ompo_minus_mpo_iter3_per_seed": final["ompo"] - final["mpo"],
        "ompo_ge_mpo_iter3_mean": bool(final["ompo"].mean() >= final["mpo"].mean()),
        "note": "reported, not asserted (001 Table 3: OMPO 0.8779 vs MPO 0.8734 on GSM8K)",
        "terminal_minus_intermediate_iter3_per_seed": {
            a: final[f"{a}_terminal"] - final[a] for a in ALGOS},
        "terminal_note": "reported, not asserted (001 Table 7, MPO one iteration: terminal vs intermediate "
                         "reward 0.8734 vs 0.8734 on GSM8K, 0.5734 vs 0.5720 on MATH: negligible)",
    }
    return {
        "settings": {"model": MODEL, "model_seeds": cfg["model_seeds"], "equations": EQUATIONS,
                     "horizon": EQUATIONS + 1, "judge_eps": EPS, "beta": BETA,
                     "num_samples": cfg["num_samples"], "steps_per_iteration": cfg["steps_per_iteration"],
                     "optimizer": OPTIM, "iterations": cfg["iterations"],
                     "train_tasks": [t.id for t in train], "heldout_tasks": [t.id for t in held],
                     "seed": SEED, "arms": {a: {"algorithm": al, "q": q} for a, (al, q) in ARMS.items()}},
        "base": {"win_rate": 0.5, **{f"{k}_per_seed": v for k, v in base.items()}},
        "runs": table, "comparison": comparison, "verdicts": verdicts,
        "runtime_training_s": {a: table[a]["time_s"] for a in ARMS},
    }


def _write_outputs(out_dir: Path, runs) -> list[str]:
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    arm_styles = {arm: (f"{algo.upper()}{', terminal Q' if q == 'terminal' else ''}", color)
                  for (arm, (algo, q)), color in zip(ARMS.items(), colors, strict=True)}
    return _write_win_rate_outputs(out_dir, "llm_reasoning", runs, KEYS, arm_styles,
                                   "3-step arithmetic on a tiny GPT-2: win rate over the base model")


REPRODUCTION = Reproduction(
    name="llm-reasoning",
    description=("3-step arithmetic word problems on a tiny GPT-2, step menus that follow the policy's "
                 "own earlier steps: OMPO and MPO (001 Algs. 2 and 4, one-step Q, and with a terminal "
                 "preference as 001 G.2) raise the exact final-answer win rate over the base model; "
                 "per-iteration win rates for 3 iterations (001 Tables 2-3 shape)"),
    runner=run,
)
