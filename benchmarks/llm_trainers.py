"""Speed of the language-model self-play trainers, side by side with TRL's ``DPOTrainer``.

Run from the repository root::

    python benchmarks/llm_trainers.py                  # CPU, 1 torch thread, tiny GPT-2 (about 20 s)
    python benchmarks/llm_trainers.py --device cuda    # the same on a GPU
    python benchmarks/llm_trainers.py --help           # sizes, iterations, steps, threads

Issue 5 item 5. Everything uses one tiny randomly initialised GPT-2 from
:func:`prefgym.llm.tiny.tiny_lm` (``--n-layer`` 2, ``--n-embd`` 64), written to a temporary
folder with ``save_pretrained`` so that every trainer (and TRL) starts from the same
weights via ``from_pretrained``. ``--prompts`` fixed arithmetic prompts, ``--k`` samples
per prompt, ``--new-tokens`` new tokens per reply (EOS and stop strings ignored, so every
reply has exactly that many tokens), judged by ``FeatureRaterJudge.length_lover()``.

The table has one row per trainer in :data:`prefgym.agents.llm.LLM_AGENTS`:

* **s / iteration**: the trainer's own ``time_s`` metric (sampling ``K`` replies per prompt
  in one ``generate`` call, judging every pair, the algorithm's ``prepare`` - e.g.
  opponent samples and their judging for OMWU / OMPO / MPO / Nash-MD -,
  ``--steps`` optimiser steps and snapshot refreshes), mean over ``--iterations``
  iterations after one warm-up iteration. Checkpointing is off (``output_dir=None``).
* **optimiser steps/s**: ``--steps`` divided by the time from the end of the algorithm's
  ``prepare`` to the last ``optimizer.step`` of the iteration, measured with a wrapper
  around ``algorithm.prepare`` (it only records the time) and
  ``torch.optim.Optimizer.register_step_post_hook``; each step is the teacher-forced
  forward of all ``B x K`` replies, the loss, backward, clipping and AdamW.

Then the DPO comparison on one iteration's preference data: a fresh prefgym
``DPOTrainer`` collects one iteration (``source.collect`` + ``algorithm.prepare``, as in
its first iteration) and the best-vs-worst pairs of each prompt (tied groups dropped,
as the trainer does) become a ``datasets.Dataset`` with ``prompt`` / ``chosen`` /
``rejected`` text columns. On these pairs, with batch size = number of pairs, the same
lr, beta, AdamW, gradient clipping at 1 and a constant schedule:

* **TRL** ``trl.DPOTrainer`` (``DPOConfig``: no eval, no saving, ``report_to=[]``,
  reference model = a frozen copy loaded from the same folder, its log-probs
  recomputed every step, the TRL default); steps/s from a ``TrainerCallback``
  (``on_step_begin`` / ``on_step_end``) over ``--dpo-steps`` steps after 2 warm-up steps.
* **prefgym, pairs only**: :func:`prefgym.agents.llm.losses.dpo_loss` on the same pairs
  (the sampled token ids), policy and reference forward every step (as TRL), same
  optimiser settings; timed over the same number of steps.

Timings use ``time.perf_counter`` (with a CUDA synchronisation on a GPU). ``--threads``
(default 1) fixes torch's CPU threads for stable numbers. The machine's load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

from prefgym.agents.llm import LLM_AGENTS
from prefgym.agents.llm.losses import dpo_loss
from prefgym.judges.synthetic import FeatureRaterJudge
from prefgym.llm.policy import LMPolicy
from prefgym.llm.tiny import tiny_lm


def make_prompts(n: int) -> list[str]:
    """``n`` fixed arithmetic prompts in the tiny corpus' dialogue format."""
    return [f"User: what is {i % 10}+{(3 * i + 1) % 10}?\nAssistant:" for i in range(n)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_policy(model_dir: str, device: str, new_tokens: int, reference: bool) -> LMPolicy:
    lm = LMPolicy.from_pretrained(model_dir, reference="copy" if reference else None, device=device,
                                  max_new_tokens=new_tokens, stop_strings=None)
    lm.eos_token_ids = ()  # fixed-length replies: every iteration does the same work
    return lm


def time_trainer(name: str, args, model_dir: str, judge, prompts) -> dict[str, float]:
    cls = LLM_AGENTS[name]
    kw = {"beta": args.beta} if name in ("dpo", "ipo") else {}
    if name == "spo" and args.spo_beta:
        kw["beta"] = args.spo_beta  # SPO's global KL to the reference (003 App. D)
    if name in ("mpo", "spo") and args.kl_estimator != "sequence":
        kw["kl_estimator"] = args.kl_estimator
    probe = cls.algorithm_class(**kw)
    lm = make_policy(model_dir, args.device, args.new_tokens, reference=probe.needs_reference())
    trainer = cls(lm, judge, prompts, num_samples=args.k, steps_per_iteration=args.steps,
                  learning_rate=args.lr, output_dir=None, seed=args.seed, **kw)
    device = trainer.device
    marks: dict[str, list[float]] = {"prepared": [], "step": []}
    prepare = trainer.algorithm.prepare

    def timed_prepare(tr, batch, it):  # records when the optimiser phase starts; behaviour unchanged
        prepare(tr, batch, it)
        _sync(device)
        marks["prepared"].append(time.perf_counter())

    def after_step(opt, a, k):
        _sync(device)
        marks["step"].append(time.perf_counter())

    trainer.algorithm.prepare = timed_prepare
    handle = trainer.optimizer.register_step_post_hook(after_step)
    trainer.learn(1)  # warm-up
    iter_s, opt_s = [], []
    for _ in range(args.iterations):
        marks["prepared"].clear()
        marks["step"].clear()
        trainer.learn(1)
        iter_s.append(trainer.history[-1]["time_s"])
        opt_s.append(marks["step"][-1] - marks["prepared"][-1])
    handle.remove()
    del trainer.algorithm.prepare
    it = float(np.mean(iter_s))
    opt = float(np.mean(opt_s))
    return {"iter_s": it, "opt_s": opt, "steps_per_s": args.steps / opt, "opt_frac": opt / it,
            "rows": len(prompts) * args.k,
            "tokens": float(trainer.history[-1].get("response_tokens", np.nan))}


def dpo_pairs(args, model_dir: str, judge, prompts):
    """One iteration's best-vs-worst pairs of a fresh prefgym DPOTrainer (texts and token ids)."""
    lm = make_policy(model_dir, args.device, args.new_tokens, reference=False)
    trainer = LLM_AGENTS["dpo"](lm, judge, prompts, num_samples=args.k, steps_per_iteration=args.steps,
                                learning_rate=args.lr, output_dir=None, seed=args.seed, beta=args.beta)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trainer.iteration_seed(0, "torch"))
        batch = trainer.source.collect(list(prompts), seed=trainer.iteration_seed(0, "sample"))
        trainer.algorithm.prepare(trainer, batch, 0)
    e = batch.extra
    rows = [b for b in range(len(prompts)) if float(e["pair_valid"][b]) > 0]
    best, worst = e["best"].tolist(), e["worst"].tolist()
    return {
        "prompt": [batch.prompts[b] for b in rows],
        "chosen": [batch.texts[b][best[b]] for b in rows],
        "rejected": [batch.texts[b][worst[b]] for b in rows],
        "prompt_ids": [batch.prompt_ids[b] for b in rows],
        "chosen_ids": [batch.response_ids[b][best[b]] for b in rows],
        "rejected_ids": [batch.response_ids[b][worst[b]] for b in rows],
    }


def retokenised(model_dir: str, pairs) -> None:
    """Add the completions as TRL sees them: the decoded texts re-encoded, plus EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    for side in ("chosen", "rejected"):
        ids = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in pairs[side]]
        pairs[f"{side}_retok"] = [torch.tensor(x) for x in ids]


def time_prefgym_pairs(args, model_dir: str, pairs, suffix: str = "_ids") -> dict[str, float]:
    lm = make_policy(model_dir, args.device, args.new_tokens, reference=True)
    lm.model.eval()
    device = lm.device
    params = [p for p in lm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)
    n = len(pairs["prompt"])
    p_ids = pairs["prompt_ids"] * 2
    r_ids = pairs["chosen" + suffix] + pairs["rejected" + suffix]

    def step():
        opt.zero_grad(set_to_none=True)
        ref = torch.stack([x.sum() for x in lm.sequence_logprobs(p_ids, r_ids, reference=True)]).to(device)
        lp = torch.stack([x.sum() for x in lm.sequence_logprobs(p_ids, r_ids, requires_grad=True)])
        out = dpo_loss(lp[:n], lp[n:], ref[:n], ref[n:], beta=args.beta)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(out.loss.detach())

    for _ in range(2):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.dpo_steps):
        step()
    _sync(device)
    dt = time.perf_counter() - t0
    return {"steps_per_s": args.dpo_steps / dt, "step_ms": 1e3 * dt / args.dpo_steps,
            "tokens": float(np.mean([len(r) for r in r_ids]))}


def time_trl(args, model_dir: str, pairs, workdir: str) -> dict[str, float]:
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin, self.end = [], []

        def on_step_begin(self, a, state, control, **kw):
            _sync(torch.device(args.device))
            self.begin.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            _sync(torch.device(args.device))
            self.end.append(time.perf_counter())

    data = Dataset.from_dict({k: pairs[k] for k in ("prompt", "chosen", "rejected")})
    n = len(data)
    warm = 2
    cfg = trl.DPOConfig(
        output_dir=os.path.join(workdir, "trl"), per_device_train_batch_size=n, gradient_accumulation_steps=1,
        learning_rate=args.lr, beta=args.beta, max_steps=args.dpo_steps + warm, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        eval_strategy="no", save_strategy="no", report_to=[], logging_strategy="no",
        use_cpu=args.device == "cpu", seed=args.seed, disable_dropout=True, dataloader_num_workers=0,
        disable_tqdm=True,
    )
    tok = AutoTokenizer.from_pretrained(model_dir)
    timer = StepTimer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = trl.DPOTrainer(model=model_dir, args=cfg, train_dataset=data, processing_class=tok,
                                 callbacks=[timer])
        with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its final metrics dict
            out = trainer.train()
    steps = [e - b for b, e in zip(timer.begin, timer.end, strict=True)][warm:]
    # wall time between step starts includes data loading / collation, as a user sees it
    span = timer.end[-1] - timer.begin[warm]
    return {"steps_per_s": len(steps) / span, "step_ms": 1e3 * span / len(steps),
            "compute_ms": 1e3 * float(np.mean(steps)), "train_runtime_s": float(out.metrics["train_runtime"]),
            "version": trl.__version__, "ref": trainer.ref_model is not None}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (cuda[:i])")
    p.add_argument("--n-layer", type=int, default=2, help="transformer layers")
    p.add_argument("--n-embd", type=int, default=64, help="model width")
    p.add_argument("--prompts", type=int, default=16, help="prompts B (all used every iteration)")
    p.add_argument("--k", type=int, default=4, help="samples per prompt K")
    p.add_argument("--new-tokens", type=int, default=16, help="new tokens per reply (EOS ignored)")
    p.add_argument("--steps", type=int, default=4, help="optimiser steps per iteration")
    p.add_argument("--iterations", type=int, default=5, help="timed iterations per trainer (after 1 warm-up)")
    p.add_argument("--dpo-steps", type=int, default=30, help="timed steps of the TRL / pairs-only DPO runs")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (all runs)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO / IPO beta (all DPO runs)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trainers", default=",".join(LLM_AGENTS), help="comma-separated LLM_AGENTS names")
    p.add_argument("--no-trl", action="store_true", help="skip the TRL comparison")
    p.add_argument("--kl-estimator", default="sequence", choices=["sequence", "token"],
                   help="KL estimator of mpo and spo (token: full-vocabulary sequential KL)")
    p.add_argument("--spo-beta", type=float, default=0.0, help="SPO's global KL coefficient (0: none)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_start = time.perf_counter()
    prompts = make_prompts(args.prompts)
    judge = FeatureRaterJudge.length_lover()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "tiny")
        tiny_lm("gpt2", n_layer=args.n_layer, n_embd=args.n_embd, seed=args.seed, save_dir=model_dir)
        n_params = sum(p.numel() for p in LMPolicy.from_pretrained(model_dir).model.parameters())
        results = {}
        for name in args.trainers.split(","):
            results[name] = time_trainer(name, args, model_dir, judge, prompts)
            r = results[name]
            print(f"  {name}: {r['iter_s']:.3f} s/iter, {r['steps_per_s']:.1f} steps/s",
                  file=sys.stderr, flush=True)
        pairs = dpo_pairs(args, model_dir, judge, prompts)
        pg = time_prefgym_pairs(args, model_dir, pairs)
        retokenised(model_dir, pairs)
        pg_retok = time_prefgym_pairs(args, model_dir, pairs, suffix="_retok")
        trl_res = None
        if not args.no_trl:
            try:
                trl_res = time_trl(args, model_dir, pairs, tmp)
            except ImportError as exc:
                print(f"TRL not available ({exc}); pip install trl", file=sys.stderr)
    load1 = os.getloadavg() if hasattr(os, "getloadavg") else None

    print(f"# prefgym LM-trainer speed  ({' '.join(sys.argv)})")
    print(f"python {platform.python_version()}, torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPUs"
          + (f", TRL {trl_res['version']}" if trl_res else ""))
    print(f"model: tiny gpt2, {args.n_layer} layers, width {args.n_embd}, {n_params:,} parameters; "
          f"B={args.prompts} prompts x K={args.k} samples x {args.new_tokens} new tokens; "
          "judge length_lover; "
          f"{args.steps} steps/iteration, lr {args.lr}, AdamW, clip 1")
    if load0 is not None:
        print(f"1-min load average: {load0[0]:.2f} before, {load1[0]:.2f} after; "
              f"total {time.perf_counter() - t_start:.0f} s")
    print()
    header = ["trainer", "s / iteration", "optimiser steps/s", "optimiser share", "rows per step"]
    rows = [[f"`{n}`", f"{r['iter_s']:.3f}", f"{r['steps_per_s']:.1f}", f"{100 * r['opt_frac']:.0f}%",
             f"{r['rows']} (B x K)"] for n, r in results.items()]
    n_pairs = len(pairs["prompt"])
    rows.append(["prefgym `dpo_loss`, pairs only, sampled tokens", "", f"{pg['steps_per_s']:.1f}", "",
                 f"{2 * n_pairs} ({n_pairs} pairs) + ref, {pg['tokens']:.1f} tok/reply"])
    rows.append(["prefgym `dpo_loss`, pairs only, TRL's tokens", "", f"{pg_retok['steps_per_s']:.1f}", "",
                 f"{2 * n_pairs} ({n_pairs} pairs) + ref, {pg_retok['tokens']:.1f} tok/reply"])
    if trl_res is not None:
        rows.append([f"TRL {trl_res['version']} `DPOTrainer`", "", f"{trl_res['steps_per_s']:.1f}", "",
                     f"{2 * n_pairs} ({n_pairs} pairs) + ref, {pg_retok['tokens']:.1f} tok/reply"])
    else:
        rows.append(["TRL `DPOTrainer`", "", "not run", "", ""])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    if trl_res is not None:
        print()
        print(f"DPO on one iteration's pairs: prefgym pairs-only {pg['step_ms']:.1f} ms/step on the sampled "
              f"tokens, {pg_retok['step_ms']:.1f} ms/step on TRL's tokens; "
              f"TRL {trl_res['step_ms']:.1f} ms/step "
              f"({trl_res['compute_ms']:.1f} ms inside on_step_begin/end; train_runtime "
              f"{trl_res['train_runtime_s']:.2f} s for {args.dpo_steps + 2} steps incl. warm-up, "
              "reference model "
              f"{'separate' if trl_res['ref'] else 'none'}); TRL is "
              f"{pg_retok['steps_per_s'] / trl_res['steps_per_s']:.2f}x slower per step on the same tokens")


if __name__ == "__main__":
    main()
