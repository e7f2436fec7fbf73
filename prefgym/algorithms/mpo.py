"""Magnetic Preference Optimization (000): MMD whose magnet is refreshed to the last iterate."""

from dataclasses import replace

from prefgym.algorithms import mmd
from prefgym.algorithms.spec import AlgorithmSpec, HParam

SPEC = AlgorithmSpec(
    name="mpo", title="Magnetic Preference Optimization: MMD with magnet refresh; last iterate -> NE",
    paper="000 Sec. 3.2, Thm 3.7; LLM: 000 Alg. 1 (App. A.1), MPO-RT Alg. 2",
    hparams=(HParam("alpha", 0.05, mmd.ALPHA.doc, check=mmd.ALPHA.check, family_defaults={"markov": 0.1}),
             replace(mmd.REFRESH, default=100)),
    step=mmd.step,  # 000 Eq. (4) within a period, the magnet refreshed every T_k
    learning_rate={"tabular": 1.0}, uses=frozenset({"magnet"}), magnet_refresh="magnet_refresh_every",
    implementations={"llm": "prefgym.agents.llm.algorithms:MPOAlgorithm"},
    aliases=("magnetic_mpo",), class_name="MPO", class_names={"markov": "MagneticMPO"},
)
