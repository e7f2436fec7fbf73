"""JSON for the NumPy values that configs, checkpoints and summaries hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["json_default"]


def json_default(obj):
    """``default=`` hook for :func:`json.dump`: NumPy scalars and arrays as Python values, paths as str."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
