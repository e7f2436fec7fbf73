"""001's non-optimistic MPO with a one-step Q, and the multi-turn trainer: build, checkpoint, reload."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from prefgym.agents.llm.algorithms import OMPOAlgorithm, SelfPlayAlgorithm
from prefgym.agents.llm.losses import mpo_regression_loss
from prefgym.agents.llm.multiturn.problem import MultiTurnMenuProblem
from prefgym.agents.llm.multiturn.source import MultiTurnMenuSource
from prefgym.agents.llm.trainer import CONFIG_FILE, SelfPlayTrainer
from prefgym.algorithms import SPECS
from prefgym.algorithms.spec import FixedInputs
from prefgym.errors import AgentLoadError


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

    name: ClassVar[str] = "mpo_ac"
    beta: float = 1.0

    def exact_step(self, batch):
        return SPECS["mpo_ac"].step(FixedInputs(batch.old_logp, self.beta, {"current": batch.win_rate}), None)

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

    def _make_algorithm(self, algorithm, kwargs):
        algo = super()._make_algorithm(algorithm, kwargs)
        if isinstance(algo, OMPOAlgorithm) and algo.log_z is None:
            # OMPO's default log Z_h = beta (H - h + 1) / 2 with batch.steps = h is the tie value of a
            # Q summed over turns h..H; the source's one-step and terminal Q tie at 1/2 at every turn
            raise ValueError("OMPO on a multi-turn source needs log_z=beta / 2 (its one-step or terminal "
                             f"Q ties at 1/2 at every turn); got log_z=None with beta={algo.beta}")
        return algo

    def _restore(self, path: Path) -> None:
        _check_problem(self.resolve_checkpoint(path), self.source.problem, strict=False)
        super()._restore(path)


def _check_problem(folder: Path, problem: MultiTurnMenuProblem, strict: bool = True) -> dict[str, Any]:
    cfg = SelfPlayTrainer._read_config(folder)  # AgentLoadError on a missing, corrupted or newer file
    saved = cfg.get("multiturn")
    if saved is not None and not (isinstance(saved, dict) and isinstance(saved.get("fingerprint"), str)
                                  and isinstance(saved.get("tasks"), list)):
        raise AgentLoadError(f"{folder / CONFIG_FILE}: field 'multiturn' is malformed; got {saved!r:.80}")
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

    ``algorithm`` is a name or a :class:`SelfPlayAlgorithm` instance (OMPO needs
    ``log_z = beta / 2``, the tie value of this source's Q; ``ValueError`` otherwise); ``q`` and
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
    from prefgym.agents.llm.registry import ALGORITHMS  # built from the specs, above this module
    from prefgym.algorithms import get_spec

    try:
        key = get_spec(cfg["algorithm"]).name  # old names (mpo_001) are aliases
    except ValueError:
        key = None
    if key not in ALGORITHMS:
        raise ValueError(f"{folder} was trained with an unknown algorithm {cfg['algorithm']!r}")
    try:
        algorithm = ALGORITHMS[key](**cfg["algorithm_hparams"])
    except (TypeError, ValueError) as exc:
        raise AgentLoadError(f"{folder}: cannot rebuild {cfg['algorithm']!r} from its saved "
                             f"hyper-parameters ({exc})") from None
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
