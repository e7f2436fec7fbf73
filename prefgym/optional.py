"""Optional dependencies: import them on first use, or fail in one line naming the extra.

>>> from prefgym.optional import require
>>> np = require("numpy", extra="core")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from prefgym.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``pip install 'prefgym[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = purpose or f"this feature needs {module.split('.')[0]}"
        raise MissingExtraError(
            f"{what}, which is not installed: pip install 'prefgym[{extra}]'") from exc
