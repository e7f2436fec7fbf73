"""The lm-arithmetic reproduction at its --quick budget (tiny GPT-2): outputs, intervals, verdicts."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

from prefgym.errors import InvalidArgumentError  # noqa: E402
from prefgym.reproductions import get_reproduction  # noqa: E402
from prefgym.reproductions.lm_arithmetic import ARMS, SETTINGS, _agreement  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm_arithmetic")
    return out, get_reproduction("lm-arithmetic").run(out, quick=True, progress=False)


def test_quick_outputs_and_rows(quick):
    out, s = quick
    for name in ("lm_arithmetic.png", "lm_arithmetic_iterations.csv", "lm_arithmetic_base_greedy.json",
                 "summary.json"):
        assert (out / name).stat().st_size > 0
    with open(out / "lm_arithmetic_iterations.csv") as fh:
        rows = list(csv.DictReader(fh))
    iters = SETTINGS["quick"]["iterations"]
    assert [r["arm"] for r in rows] == ["base"] + [a for a in ARMS for _ in range(iters)]
    n = SETTINGS["quick"]["heldout"]
    for r in rows:
        acc, lo, hi = float(r["accuracy"]), float(r["accuracy_low"]), float(r["accuracy_high"])
        assert 0 <= lo <= acc <= hi <= 1 and acc * n == pytest.approx(round(acc * n))
        if r["arm"] != "base":  # the base model's win rate against itself is 1/2 by definition
            assert float(r["win_rate_low"]) <= float(r["win_rate"]) <= float(r["win_rate_high"])
            assert int(r["wins"]) + int(r["ties"]) + int(r["losses"]) == n
            assert np.isfinite(float(r["kl_reference"])) and float(r["kl_low"]) <= float(r["kl_high"])
    assert float(rows[0]["win_rate"]) == 0.5


def test_quick_dpo_scores_fewer_sequences_and_verdicts(quick):
    _, s = quick
    final = s["final"]
    cfg = SETTINGS["quick"]
    per_iter = cfg["prompts_per_iteration"] * cfg["num_samples"] * cfg["steps_per_iteration"]
    assert final["ompo"]["scored_sequences"] == per_iter * cfg["iterations"]
    assert final["dpo"]["scored_sequences"] <= 2 * cfg["steps_per_iteration"] * cfg["iterations"] * \
        cfg["prompts_per_iteration"]
    assert len(s["verdicts"]) == len(ARMS) + 2
    for v in s["verdicts"].values():
        assert v.startswith("held: ") or v.startswith("did not hold: ")
    assert s["lm_judge_agreement"]["pairs_judged"] == cfg["prompts_per_iteration"] * cfg["iterations"] * \
        cfg["num_samples"] * (cfg["num_samples"] - 1) // 2


def test_agreement_counts_only_pairs_the_exact_judge_decides():
    lm = np.array([0.9, 0.2, 0.6, 0.5, 0.7])
    exact = np.array([1.0, 1.0, 0.0, 0.0, 0.5])
    a = _agreement([np.stack([lm, exact], axis=1)])
    assert a["pairs_judged"] == 5 and a["pairs_exact_decided"] == 4
    assert a["exact_tied_fraction"] == pytest.approx(0.2)
    assert a["agreement"] == 0.25  # only 0.9 vs 1 agrees; 0.5 (undecided) counts as a disagreement
    assert a["mean_p_correct_first"] == pytest.approx((0.9 + 0.2 + 0.4 + 0.5) / 4)
    assert a["agreement_low"] < 0.25 < a["agreement_high"]


def test_budget_is_checked(tmp_path):
    with pytest.raises(InvalidArgumentError, match="budget must be one of"):
        get_reproduction("lm-arithmetic").run(tmp_path, budget="tpu", progress=False)
