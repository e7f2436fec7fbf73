"""SelfPlayConfig: the self-play trainer's settings as data, checked, JSON round trip, both trainer forms."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from prefgym.agents.llm.config import SelfPlayConfig  # noqa: E402
from prefgym.errors import InvalidArgumentError, InvalidTypeError  # noqa: E402

REPLIES = ["goodbye!", "hello there.", "I am fine."]
PROMPTS = ["User: hi\nAssistant:", "User: bye\nAssistant:"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _menu(tiny):
    from prefgym.agents.llm.menu import MenuPolicy
    from prefgym.llm.policy import LMPolicy

    model, tok = tiny
    lm = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model), max_new_tokens=4)
    return MenuPolicy(lm, REPLIES)


def _judge():
    from prefgym.games.matrix import planted_nash
    from prefgym.judges import TableJudge

    return TableJudge.from_preference(planted_nash(3, rank=1, seed=2).preference, REPLIES)


def test_round_trip_through_json_keeps_every_field():
    cfg = SelfPlayConfig(num_samples=3, exact=False, learning_rate=2e-3, optimizer="SGD",
                         adam_betas=[0.8, 0.95], max_grad_norm=None, lr_schedule="cosine",
                         schedule_iterations=5, warmup_steps=2,
                         output_dir="runs/x", lora={"r": 4}, tensorboard=True, seed=7, verbose=1)
    data = json.loads(json.dumps(cfg.to_dict()))
    back = SelfPlayConfig.from_dict(data)
    assert back == cfg
    assert back.optimizer == "sgd" and back.adam_betas == (0.8, 0.95) and back.output_dir == "runs/x"
    assert set(data) == set(SelfPlayConfig.field_names())
    assert SelfPlayConfig.from_dict({}) == SelfPlayConfig()  # missing fields: the defaults


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(InvalidArgumentError, match=r"unknown SelfPlayConfig fields \['lr'\]"):
        SelfPlayConfig.from_dict({"lr": 1e-3, "seed": 1})
    with pytest.raises(InvalidTypeError, match="takes a dict"):
        SelfPlayConfig.from_dict([("seed", 1)])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"num_samples": 0}, InvalidArgumentError, "num_samples"),
    ({"learning_rate": -1.0}, InvalidArgumentError, "learning_rate"),
    ({"optimizer": "lion"}, InvalidArgumentError, r"optimizer must be one of \['adamw', 'adam', 'sgd'\]"),
    ({"lr_schedule": "step"}, InvalidArgumentError, "lr_schedule must be one of"),
    ({"lr_schedule": "linear"}, InvalidArgumentError, "needs schedule_iterations"),
    ({"adam_betas": (0.9,)}, InvalidArgumentError, "adam_betas must be a pair"),
    ({"adam_betas": (0.9, 1.0)}, InvalidArgumentError, r"adam_betas\[1\]"),
    ({"max_steps_per_iteration": 8}, InvalidArgumentError, "applies with step_kl_tol"),
    ({"step_kl_tol": 1e-3, "steps_per_iteration": 4, "max_steps_per_iteration": 2}, InvalidArgumentError,
     r"max_steps_per_iteration \(2\) < steps_per_iteration \(4\)"),
    ({"exact": "yes"}, InvalidTypeError, "exact must be True, False or None"),
    ({"lora": ["r", 8]}, InvalidTypeError, "lora must be None or a dict"),
    ({"output_dir": 3}, InvalidTypeError, "output_dir must be a path"),
    ({"tensorboard": 1}, InvalidTypeError, "tensorboard must be True or False"),
    ({"seed": -1}, InvalidArgumentError, "seed"),
    ({"save_every": 0}, InvalidArgumentError, "save_every"),
])
def test_bad_fields_fail_in_post_init(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelfPlayConfig(**kwargs)


def test_config_and_keyword_forms_train_identically(tiny):
    from prefgym.agents.llm import OMWUTrainer

    settings = {"learning_rate": 1e-2, "steps_per_iteration": 2, "seed": 3, "adam_betas": (0.8, 0.99)}
    by_kw = OMWUTrainer(_menu(tiny), _judge(), PROMPTS, eta=0.5, **settings)
    by_cfg = OMWUTrainer(_menu(tiny), _judge(), PROMPTS, eta=0.5, config=SelfPlayConfig(**settings))
    assert by_kw.config == by_cfg.config == SelfPlayConfig(**settings)
    assert by_cfg.algorithm.eta == 0.5 and by_cfg.optimizer.defaults["betas"] == (0.8, 0.99)
    by_kw.learn(2)
    by_cfg.learn(2)
    for a, b in zip(by_kw.lm.model.parameters(), by_cfg.lm.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["loss"] for r in by_kw.history] == [r["loss"] for r in by_cfg.history]
    assert not torch.equal(next(by_kw.lm.model.parameters()), next(_menu(tiny).policy.model.parameters()))


def test_config_and_the_same_keyword_together_are_refused(tiny):
    from prefgym.agents.llm import SelfPlayTrainer

    with pytest.raises(InvalidArgumentError, match=r"\['learning_rate'\] given both"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", config=SelfPlayConfig(), learning_rate=1e-3)
    with pytest.raises(InvalidTypeError, match="config must be a SelfPlayConfig; got dict"):
        SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", config={"seed": 1})


def test_trainer_config_records_the_drawn_seed(tiny):
    from prefgym.agents.llm import SelfPlayTrainer

    trainer = SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu", config=SelfPlayConfig(seed=None))
    assert isinstance(trainer.config.seed, int) and trainer.config.seed == trainer.seed
    again = SelfPlayTrainer(_menu(tiny), _judge(), PROMPTS, "omwu",
                            config=SelfPlayConfig.from_dict(trainer.config.to_dict()))
    assert again.config == trainer.config
    assert dataclasses.replace(trainer.config, seed=None).seed is None
    trainer.set_random_seed(11)
    assert trainer.config.seed == trainer.seed == 11
