"""The data commands: ``prefgym data {expert, rollouts, demos, preferences}``.

One command per step of the pipeline (:mod:`prefgym.data.control`); each parses its
arguments, calls the step's function and prints one summary line (and the tiers).
``python -m prefgym.data.control STEP ...`` runs the same commands (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from prefgym.data.control.expert import train_expert
from prefgym.data.control.minari_io import default_dataset_id
from prefgym.data.control.preferences import build_preference_pairs
from prefgym.data.control.rollouts import make_checkpoint_rollouts, make_demonstrations
from prefgym.errors import DatasetError, PrefgymError

__all__ = ["add_data_commands", "main"]


def _cmd_expert(args) -> int:
    kwargs = json.loads(args.sac_kwargs) if args.sac_kwargs else None
    run = train_expert(args.env, args.timesteps, args.out, n_checkpoints=args.checkpoints, sac_kwargs=kwargs,
                       seed=args.seed, progress_bar=not args.no_progress, overwrite=args.overwrite)
    print(f"expert on {args.env}: {len(run.checkpoints)} checkpoints in {run.out_dir}; "
          f"final {run.final_path}")
    return 0


def _cmd_rollouts(args) -> int:
    ds = make_checkpoint_rollouts(args.env, args.expert, steps_per_checkpoint=args.steps_per_checkpoint,
                                  dataset_id=args.dataset_id, seed=args.seed, root=args.root,
                                  overwrite=args.overwrite, deterministic=not args.stochastic,
                                  progress_bar=not args.no_progress, trust_remote_code=args.trust_remote_code)
    print(f"wrote Minari dataset {ds.spec.dataset_id!r}: {ds.total_episodes} episodes, "
          f"{ds.total_steps} steps")
    for tier, s in json.loads(ds.storage.metadata["prefgym_metadata"])["tiers"].items():
        print(f"  {tier:>6}: return {s['mean_return']:.2f} +- {s['std_return']:.2f} "
              f"({s['episodes']} episodes, {s['steps']} steps)")
    return 0


def _cmd_demos(args) -> int:
    if (args.policy is None) == (args.from_rollouts is None):
        raise DatasetError("give exactly one of --policy and --from-rollouts")
    ds = make_demonstrations(args.env, policy=args.policy, source=args.from_rollouts, tier=args.tier,
                             dataset_id=args.dataset_id, n_steps=args.steps, seed=args.seed, root=args.root,
                             overwrite=args.overwrite, progress_bar=not args.no_progress,
                             trust_remote_code=args.trust_remote_code)
    s = json.loads(ds.storage.metadata["prefgym_metadata"])["summary"]
    print(f"wrote Minari dataset {ds.spec.dataset_id!r}: {ds.total_episodes} episodes, "
          f"{ds.total_steps} steps, return {s['mean_return']:.2f} +- {s['std_return']:.2f}")
    return 0


def _cmd_preferences(args) -> int:
    source = args.rollouts or default_dataset_id(args.env, "checkpoints")
    tiers = None if args.tiers == "all" else args.tiers.split(",")
    pairs = build_preference_pairs(source, args.pairs, segment_length=args.segment_length or None,
                                   teacher=args.teacher, tiers=tiers, label_by=args.label_by, env_id=args.env,
                                   root=args.root, seed=args.seed, progress_bar=not args.no_progress)
    path = pairs.save(args.out, overwrite=args.overwrite)
    print(f"wrote {len(pairs)} preference pairs to {path} (label accuracy vs true return "
          f"{pairs.accuracy():.3f})")
    return 0


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum`` (a bad value is a one-line usage error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def add_data_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``data {expert, rollouts, demos, preferences}`` to an argparse subparsers object."""
    data = subparsers.add_parser("data", help="make control datasets: expert, rollouts, demos, preferences")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="STEP")

    def common(p, minari_args: bool = True):
        p.add_argument("--env", required=True, help="Gymnasium id, e.g. Hopper-v5")
        p.add_argument("--seed", type=_int_at_least(0), default=0)
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        if minari_args:
            p.add_argument("--root", default=None, help="Minari root (default $MINARI_DATASETS_PATH)")
            p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")

    trust_help = ("allow loading third-party SB3 zips, which SB3 un-pickles (this runs code stored in the "
                  "file); only for files from a source you trust")
    p = sub.add_parser("expert", help="train a SAC expert on the true reward, saving checkpoints")
    common(p, minari_args=False)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty run folder")
    p.add_argument("--timesteps", type=_int_at_least(1), required=True)
    p.add_argument("--checkpoints", type=_int_at_least(1), default=10, help="checkpoints to save; default 10")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--sac-kwargs", default=None, metavar="JSON", help="SAC constructor arguments")
    p.set_defaults(func=_cmd_expert)

    p = sub.add_parser("rollouts", help="roll out every checkpoint into a ranked Minari dataset")
    common(p)
    p.add_argument("--expert", required=True, help="expert run folder (from 'prefgym data expert')")
    p.add_argument("--steps-per-checkpoint", type=_int_at_least(1), default=30_000)
    p.add_argument("--dataset-id", default=None, help="default prefgym/<env>/checkpoints-v0")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: deterministic)")
    p.add_argument("--trust-remote-code", action="store_true", help=trust_help)
    p.set_defaults(func=_cmd_rollouts)

    p = sub.add_parser("demos", help="save demonstrations as a Minari dataset")
    common(p)
    p.add_argument("--policy", default=None, help="SB3 SAC zip to roll out")
    p.add_argument("--from-rollouts", default=None, metavar="DATASET_ID", help="copy a tier of this dataset")
    p.add_argument("--tier", default="high")
    p.add_argument("--steps", type=_int_at_least(1), default=10_000,
                   help="demonstration steps; default 10000")
    p.add_argument("--dataset-id", default=None, help="default prefgym/<env>/demos-v0")
    p.add_argument("--trust-remote-code", action="store_true", help=trust_help)
    p.set_defaults(func=_cmd_demos)

    p = sub.add_parser("preferences", help="build preference pairs from a ranked rollouts dataset")
    common(p)
    p.add_argument("--rollouts", default=None, metavar="DATASET_ID",
                   help="default prefgym/<env>/checkpoints-v0")
    p.add_argument("--pairs", type=_int_at_least(1), default=20_000)
    p.add_argument("--segment-length", type=_int_at_least(0), default=50, help="0: whole episodes")
    p.add_argument("--teacher", default="oracle", help="oracle, stochastic, myopic, mistake, skip, equal")
    p.add_argument("--tiers", default="low,medium", help="comma-separated tiers, or 'all'")
    p.add_argument("--label-by", default="teacher", choices=["teacher", "checkpoint"])
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=_cmd_preferences)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m prefgym.data.control STEP ...``; returns the exit code (2 on a dataset error)."""
    parser = argparse.ArgumentParser(prog="python -m prefgym.data.control")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    try:
        args = parser.parse_args(["data", *(argv if argv is not None else sys.argv[1:])])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except PrefgymError as exc:
        print(f"prefgym data {args.data_command}: error: {exc}", file=sys.stderr)
        return 2
