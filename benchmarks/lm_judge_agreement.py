"""Agreement of the LLM-as-judge (SmolLM2-135M-Instruct) with the exact-answer judge.

Pairs whose verdict is known: for each held-out arithmetic word problem, the correct
answer and a wrong one (the correct answer plus an offset in {-3,...,3} minus {0}), both
written as ``"The answer is N."``, shown in a random order. Agreement is the share of
pairs where the LM judge gives the correct reply ``P > 1/2``; a Wilson 95% interval is
printed with it, and the same for each single order (the position bias that the
two-order average removes).

Run: ``OMP_NUM_THREADS=2 python benchmarks/lm_judge_agreement.py [--pairs 64] [--labels AB|12]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--labels", default="AB", choices=["AB", "12"])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from prefgym.data.prompts import load_prompt_dataset, shipped_prompts
    from prefgym.evaluation import wilson_interval
    from prefgym.judges.exact_answer import ExactAnswerJudge
    from prefgym.judges.lm_judge import DEFAULT_JUDGE_TEMPLATE, LMPairwiseJudge

    recs = load_prompt_dataset(shipped_prompts("heldout"), limit=args.pairs)
    exact = ExactAnswerJudge(recs)
    rng = np.random.default_rng(args.seed)
    ctx, right, wrong = [], [], []
    for r in recs:
        off = int(rng.choice([-3, -2, -1, 1, 2, 3]))
        ctx.append(r.prompt)
        right.append(f"The answer is {r.answer}.")
        ans = int(r.answer)
        wrong.append(f"The answer is {ans + off if ans + off >= 0 else ans - off}.")
    assert (exact.prob(ctx, right, wrong) == 1.0).all()
    swap = rng.random(len(ctx)) < 0.5
    a = [w if s else c for c, w, s in zip(right, wrong, swap, strict=True)]
    b = [c if s else w for c, w, s in zip(right, wrong, swap, strict=True)]
    kw = {}
    if args.labels == "12":
        kw = {"labels": ("1", "2"), "template": DEFAULT_JUDGE_TEMPLATE.replace("Response A", "Response 1")
              .replace("Response B", "Response 2").replace("A or B", "1 or 2")}
    t0 = time.perf_counter()
    judge = LMPairwiseJudge.from_pretrained(args.model, **kw)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = judge.prob(ctx, a, b)
    t_judge = time.perf_counter() - t0
    p_right = np.where(swap, 1.0 - p, p)
    q_first = judge.first_label_probs(ctx, a, b)  # one order only: P(label of the reply shown first)
    single = np.where(swap, 1.0 - q_first, q_first)
    n = len(ctx)
    agree = int((p_right > 0.5).sum())
    lo, hi = wilson_interval(agree, n)
    s_agree = int((single > 0.5).sum())
    s_lo, s_hi = wilson_interval(s_agree, n)
    res = {"pairs": n, "agreement": agree / n, "ci": (lo, hi), "mean_p_correct": float(p_right.mean()),
           "single_order_agreement": s_agree / n, "single_ci": (s_lo, s_hi),
           "mean_p_first_label": float(q_first.mean()), "load_s": t_load, "judge_s": t_judge}
    print(f"LMPairwiseJudge({args.model}, labels {args.labels}) vs exact-answer judge on {n} pairs "
          f"(correct vs wrong arithmetic answer):")
    print(f"  agreement (both orders averaged): {agree}/{n} = {agree / n:.3f} [{lo:.3f}, {hi:.3f}] "
          f"Wilson 95%; "
          f"mean P(correct wins) {p_right.mean():.3f}")
    print(f"  one order only: {s_agree}/{n} = {s_agree / n:.3f} [{s_lo:.3f}, {s_hi:.3f}]; "
          f"mean P(first label) "
          f"{q_first.mean():.3f} (position bias)")
    print(f"  load {t_load:.2f} s, judging {n} pairs (2 orders each) {t_judge:.2f} s")
    return res


if __name__ == "__main__":
    main()
