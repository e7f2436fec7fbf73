"""Prompt datasets from JSONL / Parquet / Arrow / save_to_disk, and the shipped arithmetic set."""

from __future__ import annotations

import json

import pytest

from prefgym.data.prompts import (
    ARITHMETIC_DIR,
    arithmetic_word_problems,
    load_prompt_dataset,
    shipped_prompts,
    write_arithmetic_splits,
)
from prefgym.errors import DatasetError

datasets = pytest.importorskip("datasets")

ROWS = [{"prompt": "What is 2 + 2?", "answer": "4"}, {"prompt": "What is 3 * 3?", "answer": "9"}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_parquet_arrow_and_disk_folder_agree(tmp_path):
    ds = datasets.Dataset.from_list(ROWS)
    ds.to_parquet(str(tmp_path / "p.parquet"))
    ds.save_to_disk(str(tmp_path / "disk"))
    arrow = next((tmp_path / "disk").glob("*.arrow"))
    sources = [_jsonl(tmp_path / "p.jsonl", ROWS), tmp_path / "p.parquet", arrow, tmp_path / "disk"]
    for src in sources:
        recs = load_prompt_dataset(src)
        assert [(r.prompt, r.answer) for r in recs] == [("What is 2 + 2?", "4"), ("What is 3 * 3?", "9")], src


def test_datasetdict_folder_split(tmp_path):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                               "test": datasets.Dataset.from_list(ROWS[1:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_prompt_dataset(tmp_path / "dd", split="test")[0].answer == "9"
    with pytest.raises(DatasetError, match=r"no split 'dev'; splits found: \['test', 'train'\]"):
        load_prompt_dataset(tmp_path / "dd", split="dev")


def test_gsm8k_and_chat_records(tmp_path):
    gsm = _jsonl(tmp_path / "gsm.jsonl", [{"question": "Ann has 3 pens and buys 4. How many?",
                                           "answer": "3 + 4 = 7\n#### 7"}])
    rec = load_prompt_dataset(gsm)[0]
    assert rec.prompt.startswith("Ann has") and rec.answer == "7"
    chat = _jsonl(tmp_path / "chat.jsonl", [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+5?"},
        {"role": "assistant", "content": "The answer is 7."}]}])
    rec = load_prompt_dataset(chat)[0]
    assert rec.prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+5?"}]
    assert rec.answer == "The answer is 7."


def test_custom_columns_and_missing_column_names_the_columns_found(tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", [{"text": "hi", "gold": "1"}])
    rec = load_prompt_dataset(path, prompt_column="text", answer_column="gold")[0]
    assert (rec.prompt, rec.answer) == ("hi", "1")
    with pytest.raises(DatasetError, match=r"no prompt column .*columns found: \['text', 'gold'\]"):
        load_prompt_dataset(path)
    with pytest.raises(DatasetError, match=r"no prompt column 'query'; columns found"):
        load_prompt_dataset(path, prompt_column="query")
    with pytest.raises(DatasetError, match="no such prompt dataset"):
        load_prompt_dataset(tmp_path / "absent.jsonl")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "robot", "content": "x"}]}])
    with pytest.raises(DatasetError, match="role must be one of"):
        load_prompt_dataset(bad)


def test_shipped_arithmetic_set_regenerates_identically(tmp_path):
    written = write_arithmetic_splits(tmp_path)
    for split in ("train", "heldout"):
        assert written[split].read_bytes() == (ARITHMETIC_DIR / f"{split}.jsonl").read_bytes()
    train = load_prompt_dataset(shipped_prompts("train"))
    held = load_prompt_dataset(shipped_prompts("heldout"))
    assert len(train) == len(held) == 64
    assert not {r.prompt for r in train} & {r.prompt for r in held}
    assert arithmetic_word_problems(5, seed=3) == arithmetic_word_problems(5, seed=3)
    for r in train:  # the answers are right: recompute them from the numbers in the question
        nums = [int(w) for w in r.prompt.replace("?", " ").replace(".", " ").split() if w.isdigit()]
        a, b = nums
        expected = {"more": a + b, "away": a - b, "bags": a * b, "shares": a // b}
        key = next(k for k in expected if k in r.prompt)
        assert int(r.answer) == expected[key], r.prompt
