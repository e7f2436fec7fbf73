"""A logger with Stable-Baselines3's API and file formats, for installs without SB3.

Agents log through any object with SB3's ``Logger`` interface (``record``,
``record_mean``, ``dump``, ``get_dir``, ``close``): pass
``stable_baselines3.common.logger.configure(folder, ["stdout", "csv", "tensorboard"])``
to ``agent.set_logger``, or this module's :func:`configure`, which takes the same
arguments and writes the same files (``progress.csv``, ``progress.json``,
``log.txt``, TensorBoard event files) without importing SB3.

>>> from prefgym.logger import configure
>>> logger = configure("runs/demo", ["csv"])
>>> logger.record("last_gap", 0.5)
>>> logger.dump(step=1)   # appends one row to runs/demo/progress.csv

Differences from SB3: CSV columns keep the order in which keys first appear
(SB3's order is that of a set), and :class:`TensorBoardOutputFormat` writes
scalars and text only.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from prefgym.errors import InvalidArgumentError
from prefgym.fileio import atomic_write_text

__all__ = [
    "CSVOutputFormat",
    "HumanOutputFormat",
    "JSONOutputFormat",
    "KVWriter",
    "Logger",
    "TensorBoardOutputFormat",
    "configure",
    "configure_logger",
    "make_output_format",
]

DEBUG, INFO, WARN, ERROR, DISABLED = 10, 20, 30, 40, 50
FORMATS = ("stdout", "log", "json", "csv", "tensorboard")


def _excluded(key: str, excluded: dict[str, tuple[str, ...]], fmt: str) -> bool:
    ex = excluded.get(key)
    return ex is not None and fmt in ex


def _plain(value: Any) -> Any:
    """NumPy scalars and 0-d / 1-element arrays as Python numbers."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.size == 1):
        return value.item()
    return value


class KVWriter:
    """Writes one dict of key-value pairs per :meth:`Logger.dump`."""

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]],
              step: int = 0) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class HumanOutputFormat(KVWriter):
    """SB3's ASCII table of the keys (sorted, grouped by their ``prefix/``) to a text stream or file."""

    def __init__(self, filename_or_file: str | os.PathLike | TextIO, max_length: int = 36):
        self.max_length = max_length
        if isinstance(filename_or_file, str | os.PathLike):
            self.file, self.own_file = open(filename_or_file, "w"), True
        else:
            self.file, self.own_file = filename_or_file, False

    def _truncate(self, s: str) -> str:
        return s if len(s) <= self.max_length else s[: self.max_length - 3] + "..."

    def write(self, key_values, key_excluded, step=0) -> None:
        rows: list[tuple[str, str]] = []
        tag = ""
        for key in sorted(key_values):
            if _excluded(key, key_excluded, "stdout") or _excluded(key, key_excluded, "log"):
                continue
            value = _plain(key_values[key])
            text = f"{value:<8.3g}" if isinstance(value, float) else str(value)
            if key.find("/") > 0:
                new_tag = key[: key.find("/") + 1]
                if new_tag != tag:
                    tag = new_tag
                    rows.append((self._truncate(tag), ""))
            if tag and key.startswith(tag):
                key = "   " + key[len(tag):]
            rows.append((self._truncate(key), self._truncate(text)))
        if not rows:
            return
        kw, vw = max(len(k) for k, _ in rows), max(len(v) for _, v in rows)
        dashes = "-" * (kw + vw + 7)
        body = (f"| {k}{' ' * (kw - len(k))} | {v}{' ' * (vw - len(v))} |" for k, v in rows)
        lines = [dashes, *body, dashes]
        self.file.write("\n".join(lines) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.own_file:
            self.file.close()


class CSVOutputFormat(KVWriter):
    """SB3's CSV: one row per dump; a key seen for the first time adds a column (earlier rows padded).

    Values are written with ``str`` (a float as its shortest round-trip repr), ``None``
    and missing keys as empty cells, strings quoted. A new column rewrites the file
    atomically (a new file moved over the old), so a crash never leaves it half written.
    """

    def __init__(self, filename: str | os.PathLike):
        self.filename = os.fspath(filename)
        self.file = open(self.filename, "w+")
        self.keys: list[str] = []
        self._key_set: set[str] = set()
        self.separator, self.quotechar = ",", '"'

    def _cell(self, value: Any) -> str:
        if type(value) is float or type(value) is int:  # the common case, first
            return str(value)
        value = _plain(value)
        if value is None:
            return ""
        if isinstance(value, str):
            return self.quotechar + value.replace(self.quotechar, 2 * self.quotechar) + self.quotechar
        return str(value)

    def write(self, key_values, key_excluded, step=0) -> None:
        present = {k: v for k, v in key_values.items() if not _excluded(k, key_excluded, "csv")}
        extra = [k for k in present if k not in self._key_set]
        if extra:
            self.keys.extend(extra)
            self._key_set.update(extra)
            self.file.seek(0)
            lines = self.file.readlines()
            pad = self.separator * len(extra)
            body = "".join(line[:-1] + pad + "\n" for line in lines[1:])
            self.file.close()
            atomic_write_text(self.filename, self.separator.join(self.keys) + "\n" + body)
            self.file = open(self.filename, "a+")
        cell = self._cell
        row = [cell(present[k]) if k in present else "" for k in self.keys]
        self.file.write(self.separator.join(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class JSONOutputFormat(KVWriter):
    """One JSON object per dump and line (arrays as lists)."""

    def __init__(self, filename: str | os.PathLike):
        self.file = open(filename, "w")

    def write(self, key_values, key_excluded, step=0) -> None:
        def cast(v):
            v = _plain(v)
            return v.tolist() if isinstance(v, np.ndarray) else v

        row = {k: cast(v) for k, v in key_values.items() if not _excluded(k, key_excluded, "json")}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorBoardOutputFormat(KVWriter):
    """Scalars (and strings as text) to TensorBoard event files in ``folder`` (``tensorboard`` extra)."""

    def __init__(self, folder: str | os.PathLike):
        from prefgym.optional import require

        require("tensorboard", extra="tensorboard", purpose="TensorBoard logging needs tensorboard")
        tb = require("torch.utils.tensorboard", extra="tensorboard",
                     purpose="TensorBoard logging needs torch's SummaryWriter")
        self.writer = tb.SummaryWriter(log_dir=str(folder))

    def write(self, key_values, key_excluded, step=0) -> None:
        for key, value in key_values.items():
            if _excluded(key, key_excluded, "tensorboard"):
                continue
            value = _plain(value)
            if isinstance(value, str):
                self.writer.add_text(key, value, step)
            elif isinstance(value, bool | int | float):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_output_format(fmt: str, log_dir: str | os.PathLike, log_suffix: str = "") -> KVWriter:
    """A writer for ``fmt`` in ``log_dir``: ``stdout``, ``log``, ``json``, ``csv`` or ``tensorboard``."""
    os.makedirs(log_dir, exist_ok=True)
    if fmt == "stdout":
        return HumanOutputFormat(sys.stdout)
    if fmt == "log":
        return HumanOutputFormat(os.path.join(log_dir, f"log{log_suffix}.txt"))
    if fmt == "json":
        return JSONOutputFormat(os.path.join(log_dir, f"progress{log_suffix}.json"))
    if fmt == "csv":
        return CSVOutputFormat(os.path.join(log_dir, f"progress{log_suffix}.csv"))
    if fmt == "tensorboard":
        return TensorBoardOutputFormat(log_dir)
    raise InvalidArgumentError(f"logger format must be one of {list(FORMATS)}; got {fmt!r}")


class Logger:
    """SB3's ``Logger``: ``record`` values during an iteration, ``dump`` writes them to every output.

    Parameters
    ----------
    folder
        The log folder (``get_dir``), or None.
    output_formats
        The :class:`KVWriter` objects (or SB3's) that receive every dump.
    """

    def __init__(self, folder: str | os.PathLike | None, output_formats: Sequence[KVWriter]):
        self.name_to_value: dict[str, Any] = defaultdict(float)
        self.name_to_count: dict[str, int] = defaultdict(int)
        self.name_to_excluded: dict[str, tuple[str, ...]] = {}
        self.level = INFO
        self.dir = None if folder is None else str(folder)
        self.output_formats = list(output_formats)

    @staticmethod
    def to_tuple(exclude: str | tuple[str, ...] | None) -> tuple[str, ...]:
        if exclude is None:
            return ("",)
        return exclude if isinstance(exclude, tuple) else (exclude,)

    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        """Set ``key`` to ``value`` for the next dump (the last value recorded wins)."""
        self.name_to_value[key] = value
        self.name_to_excluded[key] = self.to_tuple(exclude)

    def record_mean(self, key: str, value: float | None,
                    exclude: str | tuple[str, ...] | None = None) -> None:
        """Like :meth:`record`, but values recorded several times before a dump are averaged."""
        if value is None:
            return
        old, n = self.name_to_value[key], self.name_to_count[key]
        self.name_to_value[key] = old * n / (n + 1) + value / (n + 1)
        self.name_to_count[key] = n + 1
        self.name_to_excluded[key] = self.to_tuple(exclude)

    def dump(self, step: int = 0) -> None:
        """Write the recorded values to every output and clear them."""
        if self.level != DISABLED:
            for fmt in self.output_formats:
                if hasattr(fmt, "write"):
                    fmt.write(self.name_to_value, self.name_to_excluded, step)
        self.name_to_value.clear()
        self.name_to_count.clear()
        self.name_to_excluded.clear()

    def log(self, *args, level: int = INFO) -> None:
        """Print ``args`` to the text outputs if ``level`` is at least the logger's level."""
        if self.level <= level:
            for fmt in self.output_formats:
                if isinstance(fmt, HumanOutputFormat):
                    fmt.file.write(" ".join(map(str, args)) + "\n")
                    fmt.file.flush()

    def debug(self, *args) -> None:
        self.log(*args, level=DEBUG)

    def info(self, *args) -> None:
        self.log(*args, level=INFO)

    def warn(self, *args) -> None:
        self.log(*args, level=WARN)

    def error(self, *args) -> None:
        self.log(*args, level=ERROR)

    def set_level(self, level: int) -> None:
        self.level = level

    def get_dir(self) -> str | None:
        return self.dir

    def close(self) -> None:
        for fmt in self.output_formats:
            fmt.close()


def configure(folder: str | os.PathLike | None = None, format_strings: Sequence[str] | None = None) -> Logger:
    """SB3's ``configure``: a :class:`Logger` writing ``format_strings`` into ``folder``.

    ``folder`` defaults to ``$SB3_LOGDIR``, else a new ``SB3-<time>`` folder in the temp dir;
    ``format_strings`` to ``$SB3_LOG_FORMAT``, else ``["stdout", "log", "csv"]``.
    """
    if folder is None:
        folder = os.getenv("SB3_LOGDIR") or os.path.join(
            tempfile.gettempdir(), datetime.now().strftime("SB3-%Y-%m-%d-%H-%M-%S-%f"))
    if format_strings is None:
        format_strings = os.getenv("SB3_LOG_FORMAT", "stdout,log,csv").split(",")
    if isinstance(format_strings, str):
        raise InvalidArgumentError(f"format_strings must be a list of formats, e.g. [{format_strings!r}]; "
                                   f"got the string {format_strings!r}")
    formats = [f for f in format_strings if f]
    os.makedirs(folder, exist_ok=True)
    return Logger(folder, [make_output_format(f, folder) for f in formats])


def _latest_run_id(log_path: str | os.PathLike, log_name: str) -> int:
    """The largest ``N`` of the folders ``log_path/log_name_N`` (0 if none)."""
    best = 0
    for p in Path(log_path).glob(f"{log_name}_*"):
        tail = p.name[len(log_name) + 1:]
        if p.is_dir() and p.name[: len(log_name)] == log_name and tail.isdigit():
            best = max(best, int(tail))
    return best


def configure_logger(verbose: int = 0, tensorboard_log: str | os.PathLike | None = None,
                     tb_log_name: str = "", reset_num_timesteps: bool = True) -> Logger:
    """The default logger of an agent, as SB3 builds it in ``learn``.

    ``stdout`` when ``verbose >= 1``; with ``tensorboard_log``, also CSV-free TensorBoard
    output in ``tensorboard_log/<tb_log_name>_<N>`` (a new ``N`` per ``learn`` call unless
    ``reset_num_timesteps`` is False). Without any output, records cost a dict update.
    """
    formats: list[str] = ["stdout"] if verbose >= 1 else []
    folder = None
    if tensorboard_log is not None:
        run = _latest_run_id(tensorboard_log, tb_log_name)
        if not reset_num_timesteps:
            run = max(run - 1, 0)
        folder = os.path.join(tensorboard_log, f"{tb_log_name}_{run + 1}")
        formats.append("tensorboard")
    if folder is None:
        return Logger(None, [HumanOutputFormat(sys.stdout)] if verbose >= 1 else [])
    os.makedirs(folder, exist_ok=True)
    return Logger(folder, [make_output_format(f, folder) for f in formats])


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a real number other than NaN / inf (for loggers that skip the rest)."""
    value = _plain(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
