"""`prefgym train --prompts ... --judge ... --lora` and `prefgym evaluate RUN --prompts` on the tiny GPT-2."""

from __future__ import annotations

import json
import re

import pytest

from prefgym.cli import main
from prefgym.data.prompts import shipped_prompts
from prefgym.evaluation import wilson_interval

pytest.importorskip("datasets")


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_resume_and_evaluate_free_text(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--agent", "ompo-llm", "--judge", "exact-answer", "--prompts", shipped_prompts("train"),
            "--limit", 4, "--max-new-tokens", 6, "--param", "prompts_per_iteration=2",
            "--param", "steps_per_iteration=1", "--param", "num_samples=2", "--no-progress", "--out", run]
    code, out, err = _run([*base, "--iterations", 1, "--lora"], capsys)
    assert code == 0, err
    assert "OMPOTrainer (ompo-llm) on task prompts with tiny GPT-2: 1 iteration" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task"] == "prompts" and cfg["text"]["judge"] == "exact-answer"
    assert cfg["text"]["num_prompts"] == 4
    assert cfg["params"]["lora"] == {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}
    code, out, err = _run(["train", "--resume", run, "--iterations", 2, "--no-progress"], capsys)
    assert code == 0, err
    assert "2 iterations, resumed at iteration 1" in out
    code, out, err = _run(["train", "--resume", run, "--iterations", 3, "--judge", "lm:x"], capsys)
    assert code == 2 and "the run has judge 'exact-answer'" in err
    code, out, err = _run(["evaluate", run, "--prompts", shipped_prompts("heldout"), "--limit", 3,
                           "--samples", 1], capsys)
    assert code == 0, err
    assert "after 2 iterations" in out and "held-out prompts:" in out and "(3), judge exact-answer" in out
    m = re.search(r"greedy accuracy: (\S+) \[(\S+), (\S+)\] \(Wilson 95%, n=3\)", out)
    k = round(float(m.group(1)) * 3)
    lo, hi = wilson_interval(k, 3)
    assert (m.group(2), m.group(3)) == (f"{lo:.3f}", f"{hi:.3f}")
    assert "greedy win rate vs the base model:" in out and "sampled win rate vs the base model:" in out


def test_bad_input_is_one_line_before_training(tmp_path, capsys):
    no_col = tmp_path / "nocol.jsonl"
    no_col.write_text('{"text": "hi", "gold": "1"}\n')
    out_dir = tmp_path / "r"
    code, _, err = _run(["train", "--agent", "ompo-llm", "--prompts", no_col, "--out", out_dir], capsys)
    assert code == 2 and "columns found: ['text', 'gold']" in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists()
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"prompt": "many words " * 300, "answer": "1"}) + "\n")
    code, _, err = _run(["train", "--agent", "ompo-llm", "--prompts", long, "--out", out_dir], capsys)
    assert code == 2 and "exceeds the model's context window of 256 positions" in err
    assert not (out_dir / "trainer.json").exists()
    code, _, err = _run(["train", "--agent", "ompo-llm", "--prompts", shipped_prompts("train"),
                         "--judge", "oracle", "--out", out_dir], capsys)
    assert code == 2 and "unknown judge 'oracle'" in err
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(b"\x00" * 32)
    code, _, err = _run(["train", "--agent", "ompo-llm", "--model", odd, "--prompts",
                         shipped_prompts("train"), "--out", out_dir], capsys)
    assert code == 2 and "not a readable GGUF file" in err
    code, _, err = _run(["train", "--agent", "omwu", "--judge", "exact-answer"], capsys)
    assert code == 2 and "--judge applies to the LLM agents" in err


def test_lm_and_reward_model_judges_by_name(tmp_path, capsys):
    from prefgym.judges import RewardModelJudge, build_word_tokenizer, tiny_sequence_classifier
    from prefgym.llm.tiny import tiny_lm

    tiny_lm(n_layer=1, n_embd=16, n_head=2, n_positions=512, save_dir=tmp_path / "judge_lm")
    rm_tok = build_word_tokenizer(["what is the answer 1 2 3 4 5 6 7 8 9 0"])
    rm = RewardModelJudge(tiny_sequence_classifier(rm_tok, max_length=256), rm_tok)
    rm.save_pretrained(tmp_path / "rm")
    for spec in (f"lm:{tmp_path / 'judge_lm'}", f"rm:{tmp_path / 'rm'}"):
        run = tmp_path / f"run-{spec[:2]}"
        code, out, err = _run(["train", "--agent", "ompo-llm", "--judge", spec, "--prompts",
                               shipped_prompts("train"), "--limit", 2, "--max-new-tokens", 4,
                               "--iterations", 1, "--param", "num_samples=2", "--param",
                               "steps_per_iteration=1", "--no-progress", "--out", run], capsys)
        assert code == 0, err
        assert json.loads((run / "config.json").read_text())["text"]["judge"] == spec
