"""Reading records from local JSONL files and from Hugging Face ``datasets``.

Every loader of :mod:`prefgym.data` goes through :func:`iter_records`, so all
of them report bad input the same way: an empty source is a ``ValueError``
naming it, a malformed JSONL line a ``ValueError`` naming the file and line.
``datasets`` is imported only when it is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Record", "iter_records", "read_jsonl", "source_name"]

# (where, record): ``where`` is "file.jsonl:3" or "dataset record 3" for error messages.
Record = tuple[str, Mapping[str, Any]]
BACKENDS = ("jsonl", "datasets")


def source_name(source: Any) -> str:
    """A short name of a data source for messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    return f"{type(source).__name__} object"


def read_jsonl(path: str | Path) -> list[Record]:
    """The JSON objects of a JSONL file, one per non-blank line.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file holds no records (naming the file), or a line is not valid
        JSON or not a JSON object (naming the file and the 1-based line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    records: list[Record] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: malformed JSON line ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object per line; got {type(obj).__name__}")
            records.append((where, obj))
    if not records:
        raise ValueError(f"data file {path} is empty: it holds no JSON records")
    return records


def _dataset_records(ds: Any, name: str) -> list[Record]:
    records: list[Record] = []
    for i, row in enumerate(ds, start=1):
        if not isinstance(row, Mapping):
            raise ValueError(f"{name} record {i}: expected a mapping; got {type(row).__name__}")
        records.append((f"{name} record {i}", row))
    if not records:
        raise ValueError(f"dataset {name} is empty: it holds no records")
    return records


def _load_with_datasets(path: Path, split: str, cache_dir: str | Path | None) -> Any:
    import datasets  # optional dependency, imported on use

    # ``load_dataset`` on an empty file fails with a bare StopIteration and on a bad line
    # without its number: check JSONL files line by line first.
    if path.suffix == ".jsonl":
        read_jsonl(path)
    elif not path.read_text(encoding="utf-8").strip():
        raise ValueError(f"data file {path} is empty: it holds no JSON records")
    try:
        return datasets.load_dataset(
            "json", data_files=str(path), split=split,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"datasets could not load {path} as JSON: {type(e).__name__}: {e}") from e


def iter_records(
    source: Any,
    *,
    backend: str = "jsonl",
    split: str = "train",
    cache_dir: str | Path | None = None,
) -> Iterator[Record]:
    """Yield ``(where, record)`` pairs from a file or a ``datasets`` object.

    Parameters
    ----------
    source
        A path to a local JSONL (or JSON, with ``backend="datasets"``) file, a
        ``datasets.Dataset``, a ``datasets.DatasetDict`` (``split`` is taken),
        or any sequence of mappings.
    backend
        For paths: ``"jsonl"`` reads the file line by line with exact line
        numbers in errors; ``"datasets"`` uses
        ``datasets.load_dataset("json", data_files=path, split=split)``.
        JSONL files are checked line by line first in both cases.
    split, cache_dir
        Passed to ``datasets`` (``split`` also selects from a ``DatasetDict``).

    Raises
    ------
    ValueError
        Empty source, malformed line, unknown backend or missing split.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if backend == "jsonl":
            yield from read_jsonl(path)
            return
        if not path.is_file():
            raise FileNotFoundError(f"no such data file: {path}")
        ds = _load_with_datasets(path, split, cache_dir)
        yield from _dataset_records(ds, str(path))
        return
    if isinstance(source, Mapping):  # a DatasetDict (or a plain dict of splits)
        if split not in source:
            raise ValueError(f"split {split!r} not in the dataset; available: {sorted(source)}")
        source = source[split]
    if hasattr(source, "__iter__"):
        yield from _dataset_records(source, source_name(source))
        return
    raise TypeError(f"cannot read records from {type(source).__name__}; pass a path or a datasets.Dataset")
