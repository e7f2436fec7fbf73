"""Files that appear whole or not at all, and output folders that are never overwritten silently.

Every file prefgym writes goes through :func:`atomic_write` (write to a temporary
name in the same folder, flush, ``fsync``, then ``os.replace``), so a killed run
leaves either the previous complete file or the new one, never a mix.

>>> from prefgym.fileio import atomic_write, prepare_output_dir
>>> out = prepare_output_dir("runs/demo", overwrite=True)
>>> with atomic_write(out / "config.json", "w") as fh:
...     _ = fh.write("{}")
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from prefgym.errors import InvalidArgumentError, OutputExistsError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "contained_path", "prepare_output_dir"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb", "wt"):
        raise InvalidArgumentError(f"atomic_write mode must be 'w' or 'wb'; got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def prepare_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create ``path`` for a new run; refuse a non-empty folder unless ``overwrite``.

    Raises
    ------
    OutputExistsError
        ``path`` exists and is not empty (or is a file) and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"output path {str(path)!r} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output folder {str(path)!r} is not empty; choose another folder or pass --overwrite "
            "(overwrite=True) to replace its files")
    path.mkdir(parents=True, exist_ok=True)
    return path


def contained_path(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """``root / relative``, refusing a ``relative`` that leaves ``root`` (``..``, absolute, links).

    Raises
    ------
    InvalidArgumentError
        The resolved path is not inside ``root``.
    """
    root_resolved = Path(root).resolve()
    target = (root_resolved / relative).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise InvalidArgumentError(
            f"path {str(relative)!r} points outside the folder {str(root)!r}; refusing to follow it")
    return target
