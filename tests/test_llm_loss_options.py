"""Every loss of ``agents/llm/losses`` is a trainer option the CLI reaches.

SPO's best-of-n and ranked forms (``--param loss_form=...``), SLiC-HF (``slic-hf-llm``) and
MPO-RT (``--param variant=mpo_rt``): one CLI iteration each on the ``menu`` task, its first
loss checked against the paper's formula evaluated by hand (NumPy) on the saved initial
model; MPO-RT also against its closed-form exact step (000 Thm 3.5).
"""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from prefgym.algorithms.rules import regularized_step  # noqa: E402
from prefgym.cli import main  # noqa: E402
from prefgym.data.menus import MENU_PROMPTS, MENU_RESPONSES  # noqa: E402
from prefgym.games import planted_nash  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _train(out, agent, *params):
    argv = ["train", "--agent", agent, "--task", "menu", "--iterations", "1", "--seed", "0",
            "--out", str(out), "--no-progress"]
    for p in params:
        argv += ["--param", p]
    assert main(argv) == 0


def _initial(run):
    """Menu log-probs (B, N) of the saved initial model and the task's preference matrix."""
    from prefgym.agents.llm import MenuPolicy
    from prefgym.llm.policy import LMPolicy

    lm = LMPolicy.from_pretrained(run / "checkpoint-000001" / "policy", reference=run / "reference")
    logp = np.log(MenuPolicy(lm, MENU_RESPONSES).probs(list(MENU_PROMPTS), reference=True))
    game = json.loads((run / "config.json").read_text())["task_info"]["game"]
    P = planted_nash(3, rank=1, seed=int(game.split("seed=")[1].rstrip(")"))).preference
    return logp, P


def _first_row(run):
    with open(run / "metrics.csv") as fh:
        return next(csv.DictReader(fh))


def _logsumexp(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _ranking(logp, P):
    """Best first by the exact win rate against pi_0 (ties: lower index first)."""
    win = np.exp(logp) @ P.T
    return np.argsort(-win, axis=-1, kind="stable")


@pytest.mark.parametrize("form", ["best_of_n", "ranked"])
def test_spo_loss_forms_from_the_cli(tmp_path, form):
    alpha = 0.5
    run = tmp_path / form
    _train(run, "spo-llm", f"loss_form={form}", f"alpha={alpha}")
    hp = json.loads((run / "trainer.json").read_text())["algorithm_hparams"]
    assert hp["loss_form"] == form and hp["alpha"] == alpha
    logp, P = _initial(run)
    s = np.take_along_axis(alpha * logp, _ranking(logp, P), axis=-1)  # alpha log pi, best first
    if form == "best_of_n":  # 003 Eq. (14), mu = 1
        per = -(s[:, 0] - _logsumexp(s)) / alpha
    else:  # 003 Eq. (15): every prefix of the ranking, mu_k = 1
        tails = np.stack([_logsumexp(s[:, k:]) for k in range(s.shape[1] - 1)], -1)
        per = -(s[:, :-1] - tails).sum(-1) / alpha
    assert float(_first_row(run)["loss_first"]) == pytest.approx(per.mean(), rel=1e-5)


def test_slic_hf_from_the_cli(tmp_path):
    delta, lam = 1.5, 0.1
    run = tmp_path / "slic"
    _train(run, "slic-hf-llm", f"delta={delta}", f"lam={lam}")
    logp, P = _initial(run)
    rank = _ranking(logp, P)
    rows = np.arange(len(logp))
    margin = logp[rows, rank[:, 0]] - logp[rows, rank[:, -1]]
    hinge = np.maximum(0.0, delta - margin).mean()  # Zhao et al. 2023, rank calibration
    nll_ref = -(np.exp(logp) * logp).sum(-1).mean()  # E_{y ~ pi_ref} -log pi(y); pi_ref = pi_0 here
    assert float(_first_row(run)["loss_first"]) == pytest.approx(hinge + lam * nll_ref, rel=1e-5)


def test_mpo_rt_from_the_cli_and_its_exact_step(tmp_path, tiny):
    run = tmp_path / "mpo_rt"
    _train(run, "mpo-llm", "variant=mpo_rt", "alpha=0.1")
    assert json.loads((run / "trainer.json").read_text())["algorithm_hparams"]["variant"] == "mpo_rt"
    assert np.isfinite(float(_first_row(run)["loss_first"]))

    from prefgym.agents.llm import MenuPolicy, MPOTrainer
    from prefgym.judges import TableJudge
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    lm = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model))
    menu = MenuPolicy(lm, MENU_RESPONSES)
    P = planted_nash(3, rank=1, seed=2).preference
    prompts = list(MENU_PROMPTS[:3])
    alpha, eta = 0.5, 1.0
    trainer = MPOTrainer(menu, TableJudge.from_preference(P, list(MENU_RESPONSES)), prompts, variant="mpo_rt",
                         alpha=alpha, eta=eta, anneal=False, refresh_every=100, learning_rate=3e-3,
                         steps_per_iteration=80, max_grad_norm=None)
    magnet = menu.log_probs(prompts).double().numpy()  # pi_0, the magnet for the whole run
    trainer.learn(1)
    before = menu.log_probs(prompts).double().numpy()  # pi_1 != magnet: the reward's KL term is live
    trainer.learn(1)
    # 000 Thm 3.5: R = P(y > magnet) - alpha log(pi_1 / magnet), maximiser of E R - KL(. || pi_1) / eta
    exact = np.exp(regularized_step(before, np.exp(magnet) @ P.T, eta, alpha, magnet))
    exact /= exact.sum(-1, keepdims=True)
    np.testing.assert_allclose(menu.probs(prompts), exact, atol=5e-3)
    assert np.abs(np.exp(before) - np.exp(magnet)).max() > 1e-2  # the check is not vacuous


def test_bad_loss_options_are_refused():
    from prefgym.agents.llm.algorithms import MPOAlgorithm, SPOAlgorithm

    with pytest.raises(ValueError, match="loss_form must be"):
        SPOAlgorithm(loss_form="listwise")
    with pytest.raises(ValueError, match="needs alpha > 0"):
        SPOAlgorithm(loss_form="ranked", alpha=0.0)
    with pytest.raises(ValueError, match="variant must be"):
        MPOAlgorithm(variant="rt")
    with pytest.raises(ValueError, match="'remax' would need"):
        MPOAlgorithm(variant="mpo_rt", baseline="remax")


def test_every_public_loss_is_used_by_a_trainer():
    """A name of ``losses.__all__`` is used (in code, not text) outside ``losses/``, or by such a name."""
    import ast
    from pathlib import Path

    import prefgym.agents.llm.losses as losses

    def names(node) -> set[str]:
        return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)})

    here = Path(losses.__file__).resolve().parent
    files = list(here.parents[2].rglob("*.py"))  # prefgym/
    assert len(files) > 100
    outside = set().union(*(names(ast.parse(p.read_text())) for p in files if here not in p.parents))
    uses = {node.name: names(node) for p in here.glob("*.py") for node in ast.parse(p.read_text()).body
            if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    reached = set(losses.__all__) & outside
    frontier = list(reached)
    while frontier:
        for used in uses.get(frontier.pop(), set()) & ((set(uses) | set(losses.__all__)) - reached):
            reached.add(used)
            frontier.append(used)
    # private helpers count as links (mpo_loss -> _kl -> token_kl)
    assert set(losses.__all__) - reached == set()


@pytest.mark.parametrize("name, kw", [
    ("spo", {"loss_form": "best_of_n", "alpha": 0.5}),
    ("spo", {"loss_form": "ranked", "alpha": 0.5, "beta": 0.1, "kl_estimator": "token"}),
    ("mpo", {"variant": "mpo_rt", "alpha": 0.02}),
    ("mpo", {"variant": "mpo_rt", "alpha": 0.02, "kl_estimator": "token"}),
    ("slic_hf", {"delta": 1.0, "lam": 0.1}),
])
def test_loss_options_train_on_sampled_responses(tiny, name, kw):
    from prefgym.agents.llm import SelfPlayTrainer
    from prefgym.judges import FeatureRaterJudge
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    lm = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model), max_new_tokens=4)
    trainer = SelfPlayTrainer(lm, FeatureRaterJudge.length_lover(), list(MENU_PROMPTS[:2]), name,
                              num_samples=3, steps_per_iteration=2, learning_rate=1e-3, **kw)
    before = [p.detach().clone() for p in lm.model.parameters()]
    trainer.learn(1)
    assert np.isfinite(trainer.history[-1]["loss_first"])
    assert any(not torch.equal(a, p) for a, p in zip(before, lm.model.parameters(), strict=True))
