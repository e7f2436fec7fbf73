"""Speed of text rollouts: batched generation vs a one-sequence loop, batched vs one-pair judge calls.

Run from the repository root::

    python benchmarks/text_rollouts.py                  # CPU, tiny GPT-2: 10-40 s on 2 cores (load)
    python benchmarks/text_rollouts.py --device cuda    # the same on a GPU
    python benchmarks/text_rollouts.py --help           # sizes, repeats, sampling, a prompt file

Prints one markdown table with

1. generation: a tiny randomly initialised model from :func:`prefgym.llm.tiny.tiny_lm`
   (``--arch``, ``--n-layer``, ``--n-embd``) wrapped in :class:`~prefgym.llm.policy.LMPolicy`
   answers ``--batch`` prompts with ``--new-tokens`` new tokens each (no stop
   string, EOS ignored so every reply has exactly ``--new-tokens`` tokens, as in
   the ``ignore_eos`` setting of serving benchmarks), (a) in ONE batched
   ``generate`` call (left padding, KV cache), and (b) in a naive loop calling
   ``generate`` on one prompt at a time (same prompts, same ``max_new_tokens``,
   also with the KV cache). Decoding is greedy by default, so the two produce the
   same tokens and the table says whether they did; ``--sample`` samples
   (temperature 1, seed ``--seed`` for the batched call, ``--seed + i`` for prompt
   ``i`` of the loop). The speed-up is the ratio of generated tokens per second;
   times are the best of ``--repeats`` after a warm-up. Also timed: the batched
   call plus the reference model's teacher-forced log-probs.
2. judging: ``--pairs`` comparisons by a rule-based Bradley-Terry judge on reply
   length (:class:`LengthJudge` below), in one batched ``judge.prob`` call vs one
   call per pair, and the win-rate matrices of ``--batch // --k`` contexts with
   ``--k`` samples each by :func:`~prefgym.llm.sampling.win_rate_matrices` (one
   call) vs :meth:`~prefgym.judges.base.PairwiseJudge.win_matrix` per context.
   If ``prefgym.judges`` provides ``RewardModelJudge`` and
   ``tiny_sequence_classifier``, a tiny transformers reward-model judge is timed
   the same way; otherwise the table says it was skipped.

The generation speed-up target (issue 4) is >= 5x. Timings use ``time.perf_counter``;
on CUDA every timed call ends in a device synchronisation (results come back to the CPU).
The machine's load average is printed, since other processes skew CPU timings.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time

import numpy as np
import torch

from prefgym.judges.base import PairwiseJudge
from prefgym.llm.base import format_dialogue
from prefgym.llm.policy import LMPolicy
from prefgym.llm.sampling import load_prompts, win_rate_matrices
from prefgym.llm.tiny import tiny_lm


class LengthJudge(PairwiseJudge):
    """Bradley-Terry on reply length: ``P(a > b) = sigmoid((len(a) - len(b)) / 10)``, vectorised."""

    def _prob(self, contexts, responses_a, responses_b):
        la = np.fromiter((len(a) for a in responses_a), dtype=np.float64, count=len(responses_a))
        lb = np.fromiter((len(b) for b in responses_b), dtype=np.float64, count=len(responses_b))
        return 1.0 / (1.0 + np.exp(-(la - lb) / 10.0))


def default_prompts(n: int) -> list[str]:
    """``n`` dialogue prompts of varied lengths (so left padding matters)."""
    questions = ["hi", "what is 3+4?", "tell me a joke about a chicken and a road", "name a fruit",
                 "what colour is the sky on a clear day?", "how are you?", "what is 9*9?", "bye"]
    return [format_dialogue([(questions[i % len(questions)] + " " * (i // len(questions)), None)])
            for i in range(n)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, repeats: int, device: torch.device):
    """(best seconds over ``repeats`` calls, last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def judge_rows(name: str, judge: PairwiseJudge, contexts: list[str], replies: list[str], pairs: int, k: int,
               repeats: int, device: torch.device) -> list[list[str]]:
    """Rows for one judge: batched vs one-pair-per-call comparisons, and win-rate matrices."""
    rng = np.random.default_rng(0)
    i = rng.integers(len(replies), size=pairs)
    j = (i + 1 + rng.integers(len(replies) - 1, size=pairs)) % len(replies)
    ctx = [contexts[t % len(contexts)] for t in range(pairs)]
    a, b = [replies[t] for t in i], [replies[t] for t in j]
    judge.prob(ctx[:4], a[:4], b[:4])  # warm-up
    t_batch, p_batch = best_time(lambda: judge.prob(ctx, a, b), repeats, device)
    t_loop, p_loop = best_time(lambda: np.concatenate([judge.prob(ctx[t:t + 1], a[t:t + 1], b[t:t + 1])
                                                       for t in range(pairs)]), max(1, repeats // 2), device)
    diff = float(np.max(np.abs(p_batch - p_loop)))
    groups = [replies[c * k:(c + 1) * k] for c in range(len(replies) // k)]
    gctx = contexts[:len(groups)]
    n_cmp = len(groups) * k * (k - 1) // 2
    t_mats, W1 = best_time(lambda: win_rate_matrices(judge, gctx, groups), repeats, device)
    t_mats_loop, W2 = best_time(lambda: [judge.win_matrix(c, g) for c, g in zip(gctx, groups, strict=True)],
                                repeats, device)
    wdiff = max(float(np.max(np.abs(x - y))) for x, y in zip(W1, W2, strict=True))
    return [
        [f"2. {name}: one batched judge.prob call", f"{pairs} pairs", fmt_time(t_batch),
         f"{pairs / t_batch:,.0f} cmp/s", ""],
        [f"2. {name}: one pair per call", f"{pairs} pairs", fmt_time(t_loop), f"{pairs / t_loop:,.0f} cmp/s",
         f"speed-up {t_loop / t_batch:.1f}x; max |dP| {diff:.1e}"],
        [f"2. {name}: win_rate_matrices (1 call)", f"{len(groups)} ctx x K={k}", fmt_time(t_mats),
         f"{n_cmp / t_mats:,.0f} cmp/s", ""],
        [f"2. {name}: win_matrix per context", f"{len(groups)} ctx x K={k}", fmt_time(t_mats_loop),
         f"{n_cmp / t_mats_loop:,.0f} cmp/s", f"speed-up {t_mats_loop / t_mats:.1f}x; max |dW| {wdiff:.1e}"],
    ]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (cuda[:i])")
    p.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"], help="tiny model architecture")
    p.add_argument("--n-layer", type=int, default=2, help="transformer layers")
    p.add_argument("--n-embd", type=int, default=64, help="model width")
    p.add_argument("--n-head", type=int, default=2, help="attention heads")
    p.add_argument("--batch", type=int, default=32, help="prompts B")
    p.add_argument("--new-tokens", type=int, default=32, help="max_new_tokens per reply")
    p.add_argument("--sample", action="store_true", help="multinomial sampling instead of greedy decoding")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (each call of both runs)")
    p.add_argument("--repeats", type=int, default=3, help="timings per measurement (best is kept)")
    p.add_argument("--pairs", type=int, default=2000, help="judge comparisons per timing")
    p.add_argument("--k", type=int, default=4, help="samples per context in the win-rate matrices")
    p.add_argument("--prompts", default=None,
                   help="prompt file (.txt: one per line, \\n escaped; .jsonl); cycled to --batch prompts")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-model-judge", action="store_true", help="skip the transformers reward-model judge")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False on this machine (no GPU or a CPU "
                         "build of torch); run without --device or on a machine with a GPU")
    if args.batch < 2 or args.new_tokens < 1 or args.repeats < 1 or args.pairs < 1 or args.k < 2:
        raise SystemExit("need --batch >= 2, --new-tokens >= 1, --repeats >= 1, --pairs >= 1, --k >= 2")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.prompts is not None:
        try:
            base = load_prompts(args.prompts)
        except (OSError, ValueError) as e:
            raise SystemExit(f"--prompts: {e}") from None
        prompts = [base[i % len(base)] for i in range(args.batch)]
    else:
        prompts = default_prompts(args.batch)

    import transformers

    print(f"# prefgym text-rollout benchmark  ({' '.join(sys.argv)})")
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None

    model, tok = tiny_lm(args.arch, n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head, seed=0)
    n_params = sum(q.numel() for q in model.parameters())

    policy = LMPolicy(model, tok, reference_model=copy.deepcopy(model), device=device,
                      max_new_tokens=args.new_tokens, stop_strings=None)
    policy.eos_token_ids = ()  # ignore EOS: fixed-length replies, equal work in both runs
    mode = f"sampled (seed {args.seed})" if args.sample else "greedy"
    kw = dict(do_sample=args.sample, seed=args.seed if args.sample else None, compute_ref=False)
    policy.generate(prompts[:2], **kw)  # warm-up
    policy.generate(prompts[:1], **kw)
    t_b, g_b = best_time(lambda: policy.generate(prompts, **kw), args.repeats, device)
    kw_ref = {**kw, "compute_ref": True}
    t_r, _ = best_time(lambda: policy.generate(prompts, **kw_ref), args.repeats, device)
    def loop():
        return [policy.generate([q], **{**kw, "seed": args.seed + i if args.sample else None})
                for i, q in enumerate(prompts)]

    t_l, g_l = best_time(loop, args.repeats, device)
    tok_b = int(g_b.lengths.sum())
    tok_l = sum(int(g.lengths.sum()) for g in g_l)
    same = all(torch.equal(g.response_ids[0], r) for g, r in zip(g_l, g_b.response_ids, strict=True))
    p_len = [len(x) for x in g_b.prompt_ids]
    what = f"B={args.batch}, {args.new_tokens} new"
    rows = [
        [f"1. batched generate ({mode})", what, fmt_time(t_b), f"{tok_b / t_b:,.0f} tok/s",
         f"one call; prompts {min(p_len)}-{max(p_len)} tokens (left-padded), {tok_b} reply tokens"],
        ["1. batched generate + reference log-probs", what, fmt_time(t_r), f"{tok_b / t_r:,.0f} tok/s",
         "plus one teacher-forced forward of the reference"],
        [f"1. naive loop, one prompt per call ({mode})", what, fmt_time(t_l), f"{tok_l / t_l:,.0f} tok/s",
         f"{tok_l} reply tokens"],
        ["1. speed-up batched / naive (tok/s)", "", f"{(tok_b / t_b) / (tok_l / t_l):.1f}x", "",
         f"target >= 5x; identical tokens: {'yes' if same else 'no'}"
         + (" (expected: sampling draws differ with the batch layout)" if args.sample and not same else "")],
    ]

    contexts = list(g_b.prompts)
    replies = list(g_b.texts)
    rows += judge_rows("LengthJudge (rule-based)", LengthJudge(), contexts, replies, args.pairs, args.k,
                       args.repeats, device)
    if args.no_model_judge:
        rows.append(["2. reward-model judge", "", "skipped", "", "--no-model-judge"])
    else:
        try:
            from prefgym.judges import RewardModelJudge, tiny_sequence_classifier

            clf = tiny_sequence_classifier(tok, arch="gpt2", hidden_size=32, num_layers=1, num_heads=2,
                                           max_length=256).to(device)
            # right padding: with tiny_lm's left-padding tokenizer the GPT-2 classifier's scores
            # depend on the batch (positions shift with the padding)
            judge_tok = copy.deepcopy(tok)
            judge_tok.padding_side = "right"
            rm = RewardModelJudge(clf, judge_tok, batch_size=64, device=device)
            rows += judge_rows("RewardModelJudge (tiny gpt2 classifier)", rm, contexts, replies,
                               min(args.pairs, 400), args.k, args.repeats, device)
        except Exception as e:  # optional: other modules may not exist yet or may change
            rows.append(["2. reward-model judge", "", "skipped", "", f"{type(e).__name__}: {e}"[:100]])

    load1 = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"model: tiny {args.arch}, {args.n_layer} layers, width {args.n_embd}, {args.n_head} heads, vocab "
          f"{len(tok)}, {n_params:,} parameters, float32, random init; decoding {mode}")
    if load0 is not None:
        print(f"1-min load average: {load0[0]:.2f} before, {load1[0]:.2f} after")
    print()
    header = ["measurement", "size", "time", "throughput", "notes"]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]

    def line(cells):
        return "| " + " | ".join(str(x).ljust(w) for x, w in zip(cells, widths, strict=True)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
