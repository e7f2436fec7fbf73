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
import ctypes
import io
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from prefgym.errors import AgentLoadError, InvalidArgumentError, OutputExistsError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "contained_path", "prepare_output_dir",
           "empty_dir", "publish_dir", "read_zip_json", "staged_output_dir"]


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
    _check_output_dir(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_output_dir(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"output path {str(path)!r} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output folder {str(path)!r} is not empty; choose another folder or pass --overwrite "
            "(overwrite=True) to replace its files")


def _sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def staged_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A hidden staging folder beside ``path``; when the block ends it replaces ``path`` in one step.

    For runs that write several files: a run killed or failed inside the block leaves
    ``path`` exactly as it was (a failed block removes its staging folder; a killed one
    leaves a hidden ``.NAME.staging-*`` folder, never a half-written ``path``).

    Raises
    ------
    OutputExistsError
        ``path`` is a file, or a non-empty folder and ``overwrite`` is False (checked
        before and after the block).
    """
    path = Path(path)
    _check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = _sibling(path, "staging")
    stage.mkdir()
    try:
        yield stage
        _check_output_dir(path, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish_dir(stage, path)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def publish_dir(stage: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the folder ``stage`` to ``path``, replacing what is there in one atomic step where possible.

    A missing or empty ``path`` is replaced by a rename; a non-empty one is swapped with
    ``stage`` atomically (Linux), then the old contents are deleted. Elsewhere the old
    folder is first renamed to a hidden ``.NAME.old-*`` sibling.
    """
    stage, path = Path(stage), Path(path)
    try:
        os.replace(stage, path)  # path missing, or an empty folder
    except OSError:
        if _exchange(stage, path):
            shutil.rmtree(stage, ignore_errors=True)  # now holds the old contents
        else:  # pragma: no cover - non-Linux fallback
            old = _sibling(path, "old")
            os.rename(path, old)
            os.rename(stage, path)
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)
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


def empty_dir(path: str | os.PathLike) -> Path:
    """Make the folder ``path`` empty in one step (an empty folder is swapped in; see :func:`publish_dir`)."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        empty = _sibling(path, "empty")
        empty.mkdir()
        publish_dir(empty, path)
    else:
        path.mkdir(parents=True, exist_ok=True)
    return path


def read_zip_json(source: str | os.PathLike | bytes, json_member: str, members: tuple[str, ...],
                  where: str, kind: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``(parsed json_member, {member: bytes})`` of a saved zip (a path or its bytes).

    Every failure is one :class:`AgentLoadError` naming ``where``: a member missing, a zip that
    is empty, truncated or corrupted, or a ``json_member`` that is not a JSON object.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as zf:
            names = zf.namelist()
            missing = [m for m in (json_member, *members) if m not in names]
            if missing:
                raise AgentLoadError(f"{where} is not a {kind}: no {missing[0]} (holds {names[:6]})")
            raw = {m: zf.read(m) for m in (json_member, *members)}
    except AgentLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises many types (BadZipFile, zlib, struct...)
        raise AgentLoadError(f"{where} is not a readable zip file (empty, truncated or corrupted: "
                             f"{type(exc).__name__}: {str(exc)[:300]})") from None
    try:
        meta = json.loads(raw.pop(json_member))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentLoadError(f"{where}: {json_member} is not valid JSON ({str(exc)[:300]})") from None
    if not isinstance(meta, dict):
        raise AgentLoadError(f"{where}: {json_member} is not a JSON object")
    return meta, raw
