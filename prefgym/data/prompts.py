"""Prompt datasets: prompts and reference answers from local ``datasets``-loadable files.

:func:`load_prompt_dataset` reads a JSONL / JSON, Parquet or Arrow file, or a folder written
by ``Dataset.save_to_disk``, and returns :class:`PromptRecord` s. A record's prompt comes from
a ``prompt`` column (a string or a list of chat messages) or a ``messages`` column (chat
records; a final ``assistant`` message is the reference reply, not part of the prompt); a
GSM8K-style record (``question`` and an ``answer`` ending in ``#### <answer>``) works too.
The column names are settable.

:func:`arithmetic_word_problems` generates the small arithmetic word-problem set shipped in
``prefgym/data/arithmetic/`` (``train.jsonl``, ``heldout.jsonl``; :func:`shipped_prompts`),
deterministically from a seed: :func:`write_arithmetic_splits` regenerates the files byte
for byte.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prefgym.errors import DatasetError

__all__ = [
    "PromptRecord",
    "arithmetic_word_problems",
    "load_prompt_dataset",
    "shipped_prompts",
    "write_arithmetic_splits",
    "ARITHMETIC_DIR",
]

#: folder of the shipped arithmetic word problems
ARITHMETIC_DIR = Path(__file__).with_name("arithmetic")
_SUFFIX_BUILDER = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class PromptRecord:
    """One prompt: a string or chat messages, with its reference answer (or ``None``) and an id."""

    prompt: Any
    answer: str | None
    id: str


def _read_dataset(path: Path, split: str):
    from prefgym.optional import require

    datasets = require("datasets", "llm", "reading prompt datasets needs the datasets package")
    quiet = not datasets.are_progress_bars_disabled()
    if quiet:  # a few hundred prompts: no "Generating train split" bars
        datasets.disable_progress_bars()
    try:
        return _read_dataset_quiet(datasets, path, split)
    finally:
        if quiet:
            datasets.enable_progress_bars()


def _read_dataset_quiet(datasets, path: Path, split: str):
    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, Mapping):
                if split not in ds:
                    raise DatasetError(f"{path}: no split {split!r}; splits found: {sorted(ds)}")
                ds = ds[split]
            return ds
        suffix = path.suffix.lower()
        if suffix == ".arrow":
            return datasets.Dataset.from_file(str(path))
        if suffix not in _SUFFIX_BUILDER:
            raise DatasetError(f"{path}: unknown prompt-file type {suffix!r}; use .jsonl, .json, .parquet, "
                               ".arrow or a save_to_disk folder")
        return datasets.load_dataset(_SUFFIX_BUILDER[suffix], data_files=str(path), split="train")
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file, named
        msg = " ".join(str(exc).split())[:300]
        raise DatasetError(f"cannot read prompts from {path}: {type(exc).__name__}: {msg}") from None


def _answer_of(value: Any) -> str | None:
    """A reference answer: GSM8K's text after ``####``, else the value as a string."""
    if value is None:
        return None
    text = str(value).strip()
    if "####" in text:
        from prefgym.data.reasoning import extract_gsm8k_answer

        return extract_gsm8k_answer(text)
    return text or None


def _resolve_columns(path: Path, columns: list[str], prompt_column: str | None,
                     answer_column: str | None) -> tuple[str, str | None]:
    """The prompt column (given, else the first of prompt / messages / question) and the answer
    column (given, else ``answer`` if present); a named column must exist."""
    if prompt_column is None:
        prompt_column = next((c for c in ("prompt", "messages", "question") if c in columns), None)
        if prompt_column is None:
            raise DatasetError(f"{path}: no prompt column (looked for 'prompt', 'messages', 'question'); "
                               f"columns found: {columns}; set the prompt column name")
    elif prompt_column not in columns:
        raise DatasetError(f"{path}: no prompt column {prompt_column!r}; columns found: {columns}")
    if answer_column is None:
        answer_column = "answer" if "answer" in columns else None
    elif answer_column not in columns:
        raise DatasetError(f"{path}: no answer column {answer_column!r}; columns found: {columns}")
    return prompt_column, answer_column


def _split_reference_reply(raw, answer: str | None, where: str):
    """A chat record ending in the assistant's message: the prompt without it, and that message
    as the answer when there is no answer yet. Other records pass through unchanged."""
    from prefgym.llm.chat import is_messages

    if not is_messages(raw):
        return raw, answer
    msgs = list(raw)
    if msgs[-1].get("role") == "assistant":  # a chat record with its reference reply
        last = msgs.pop()
        if answer is None:
            answer = _answer_of(last.get("content"))
        if not msgs:
            raise DatasetError(f"{where}: the conversation holds only an assistant message")
    return msgs, answer


def load_prompt_dataset(
    source: str | os.PathLike,
    prompt_column: str | None = None,
    answer_column: str | None = None,
    id_column: str | None = "id",
    split: str = "train",
    limit: int | None = None,
) -> list[PromptRecord]:
    """Prompts (and reference answers) from a local file or ``save_to_disk`` folder.

    Parameters
    ----------
    source
        ``.jsonl`` / ``.json``, ``.parquet``, ``.arrow`` or a ``load_from_disk`` folder.
    prompt_column
        Column of the prompts (strings or chat messages); default the first of ``prompt``,
        ``messages``, ``question`` that exists.
    answer_column
        Column of the reference answers; default ``answer`` if it exists (GSM8K's
        ``#### x`` is reduced to ``x``). Chat records whose last message is the assistant's
        take that message as the answer when no answer column exists.
    id_column
        Column of record ids, if present (default ids: ``<file stem>-<row>``).
    split
        Split of a ``DatasetDict`` folder.
    limit
        Keep the first ``limit`` records.

    Raises
    ------
    DatasetError
        Missing file, unreadable file, no prompt column (the message names the columns found),
        a set ``answer_column`` that is absent, a malformed record, or an empty dataset.
    """
    from prefgym.llm.chat import check_prompt

    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"no such prompt dataset: {path}")
    ds = _read_dataset(path, split)
    columns = list(ds.column_names)
    prompt_column, answer_column = _resolve_columns(path, columns, prompt_column, answer_column)
    if limit is not None and int(limit) < 1:
        raise DatasetError(f"limit must be a positive number of records; got {limit}")
    records: list[PromptRecord] = []
    for i, row in enumerate(ds):
        if limit is not None and i >= int(limit):
            break
        where = f"{path} record {i + 1}"
        answer = _answer_of(row[answer_column]) if answer_column is not None else None
        raw, answer = _split_reference_reply(row[prompt_column], answer, where)
        try:
            prompt = check_prompt(raw, f"{where}: {prompt_column}")
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
        if isinstance(prompt, str) and not prompt.strip():
            raise DatasetError(f"{where}: empty prompt")
        rid = row.get(id_column) if id_column and id_column in columns else None
        records.append(PromptRecord(prompt, answer, str(rid) if rid is not None else f"{path.stem}-{i}"))
    if not records:
        raise DatasetError(f"{path} holds no prompts")
    return records


# ------------------------------------------------------------------ arithmetic word problems
_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Ema", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lena")
_ITEMS = ("apples", "books", "coins", "marbles", "pencils", "stickers", "cards", "shells")
#: instruction appended to every question (the exact-answer judge reads the last number anyway)
ANSWER_FORMAT = "Reply with the number only."


def _problem(rng: np.random.Generator) -> tuple[str, int]:
    name, item = _NAMES[rng.integers(len(_NAMES))], _ITEMS[rng.integers(len(_ITEMS))]
    kind = int(rng.integers(4))
    a, b = int(rng.integers(2, 20)), int(rng.integers(2, 10))
    if kind == 0:
        return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b
    if kind == 1:
        a = a + b  # no negative answers
        return f"{name} has {a} {item} and gives away {b}. How many {item} are left?", a - b
    if kind == 2:
        return f"{name} buys {b} bags with {a} {item} in each. How many {item} is that in all?", a * b
    return f"{name} shares {a * b} {item} equally among {b} friends. How many {item} does each get?", a


def arithmetic_word_problems(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` one-step word problems (add, subtract, multiply, divide) with integer answers.

    Records ``{"id", "prompt", "answer"}``; the same ``(n, seed)`` gives the same list.
    """
    if int(n) < 1:
        raise DatasetError(f"n must be a positive number of problems; got {n}")
    rng = np.random.default_rng(int(seed))
    out, seen = [], set()
    while len(out) < int(n):
        q, ans = _problem(rng)
        if q in seen:
            continue
        seen.add(q)
        out.append({"id": f"arith-{seed}-{len(out)}", "prompt": f"{q} {ANSWER_FORMAT}", "answer": str(ans)})
    return out


#: split -> (number of problems, seed) of the shipped set
ARITHMETIC_SPLITS = {"train": (64, 0), "heldout": (64, 1)}


def _jsonl(records: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(dict(r), sort_keys=True) + "\n" for r in records)


def write_arithmetic_splits(folder: str | os.PathLike = ARITHMETIC_DIR) -> dict[str, Path]:
    """Write ``train.jsonl`` and ``heldout.jsonl`` of the arithmetic set into ``folder`` (atomically).

    The held-out questions are disjoint from the training questions.
    """
    from prefgym.fileio import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train = arithmetic_word_problems(*ARITHMETIC_SPLITS["train"])
    taken = {r["prompt"] for r in train}
    n, seed = ARITHMETIC_SPLITS["heldout"]
    held = [r for r in arithmetic_word_problems(2 * n, seed) if r["prompt"] not in taken][:n]
    out = {}
    for name, recs in (("train", train), ("heldout", held)):
        out[name] = folder / f"{name}.jsonl"
        atomic_write_text(out[name], _jsonl(recs))
    return out


def shipped_prompts(split: str = "train") -> Path:
    """Path of a split (``train`` or ``heldout``) of the shipped arithmetic word problems."""
    if split not in ARITHMETIC_SPLITS:
        raise DatasetError(f"split must be one of {sorted(ARITHMETIC_SPLITS)}; got {split!r}")
    return ARITHMETIC_DIR / f"{split}.jsonl"
