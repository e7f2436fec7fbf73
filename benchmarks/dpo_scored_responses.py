"""Speed of a DPO optimiser step that teacher-forces only the chosen and rejected replies.

Run from the repository root::

    python benchmarks/dpo_scored_responses.py              # SmolLM2-135M-Instruct + LoRA, CPU
    python benchmarks/dpo_scored_responses.py --model tiny # tiny random GPT-2 (seconds)

One iteration's batch is collected once (``--prompts`` prompts of the shipped arithmetic
train split, ``--k`` sampled replies each, ``--new-tokens`` tokens at most, exact-answer
judge) and DPO's best-vs-worst pairs prepared. Then the step the trainer repeats -- the
teacher-forced log-probs, DPO's loss, backward -- is timed ``--repeats`` times for each
mode, interleaved (masked, all, masked, all, ...) so that both see the same machine load:

* **pair only**: ``source.logp(batch, mask=algorithm.scored_responses(batch))``, what
  the trainer does now (2 replies per untied group);
* **all B x K**: ``source.logp(batch)``, what it did before.

Prints the load average before and after, the sequences scored per step, the median
seconds per step of each mode and their ratio, and the largest gradient difference.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="'tiny' or a model name/path")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from prefgym.agents.llm import DPOTrainer
    from prefgym.data.prompts import load_prompt_dataset, shipped_prompts
    from prefgym.judges.exact_answer import ExactAnswerJudge
    from prefgym.llm.policy import LMPolicy

    torch.set_num_threads(args.threads)
    records = load_prompt_dataset(shipped_prompts("train"), limit=args.prompts)
    judge = ExactAnswerJudge(records)
    if args.model == "tiny":
        from prefgym.llm.tiny import tiny_lm

        net, tok = tiny_lm(n_layer=2, n_embd=64, n_head=2, seed=0)
        lm = LMPolicy(net, tok, reference_model=copy.deepcopy(net), max_new_tokens=args.new_tokens)
        lora = None
    else:
        from prefgym.llm.pretrained import resolve_model

        lm = LMPolicy.from_pretrained(resolve_model(args.model), reference="copy",
                                      max_new_tokens=args.new_tokens)
        if lm.uses_chat_template:
            lm.stop_strings = ()
        lora = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
    trainer = DPOTrainer(lm, judge, [r.prompt for r in records], num_samples=args.k, lora=lora,
                         logp_batch_size=8, seed=args.seed)
    batch = trainer.source.collect([r.prompt for r in records], seed=args.seed)
    trainer.algorithm.prepare(trainer, batch, 0)
    mask = trainer.algorithm.scored_responses(batch)
    if int(mask.sum()) == 2 and float(batch.extra["pair_valid"].sum()) == 0:
        print("note: every group tied (all replies right or all wrong); the fallback pair is scored")

    def step(m):
        trainer.optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        logp = trainer.source.logp(batch, requires_grad=True, mask=m)
        trainer.algorithm.loss(trainer, batch, logp, 0).loss.backward()
        dt = time.perf_counter() - t0
        return dt, [None if p.grad is None else p.grad.clone() for p in trainer.params]

    print(f"load average before: {os.getloadavg()}")
    times = {"pair only": [], "all B x K": []}
    grads = {}
    for _ in range(args.repeats):
        for name, m in (("pair only", mask), ("all B x K", None)):
            dt, g = step(m)
            times[name].append(dt)
            grads[name] = g
    print(f"load average after: {os.getloadavg()}")
    pairs = zip(grads["pair only"], grads["all B x K"], strict=True)
    diff = max((float((a - b).abs().max()) for a, b in pairs if a is not None and b is not None), default=0.0)
    B, K = batch.shape
    print(f"model={args.model} B={B} K={K} new_tokens<={args.new_tokens} untied groups="
          f"{int(batch.extra['pair_valid'].sum())}/{B} threads={args.threads}")
    print(f"sequences scored per step: pair only {int(mask.sum())}, all {B * K}")
    for name, ts in times.items():
        print(f"{name:10s} median {statistics.median(ts):.3f} s/step  ({', '.join(f'{t:.2f}' for t in ts)})")
    ratio = statistics.median(times["all B x K"]) / statistics.median(times["pair only"])
    print(f"speed-up (all / pair only, medians): {ratio:.2f}x   max |grad difference| {diff:.2e}")


if __name__ == "__main__":
    main()
