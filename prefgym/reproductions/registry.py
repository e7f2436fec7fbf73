"""The :class:`Reproduction` record: a named paper claim and the function that checks it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prefgym.fileio import atomic_write
from prefgym.serialization import json_default

__all__ = ["Reproduction"]


@dataclass(frozen=True)
class Reproduction:
    """A reproduction of one paper figure.

    Attributes
    ----------
    name
        Registry key (``prefgym reproduce NAME``).
    description
        One line naming the paper claim.
    runner
        ``runner(out_dir, quick, progress, **options) -> summary``; writes figures and CSVs.
    options
        Names of the extra keyword options the runner accepts (e.g. ``budget``, ``env``);
        empty for runners that take none.
    """

    name: str
    description: str
    runner: Callable[..., dict]
    options: tuple[str, ...] = ()

    def run(self, out_dir: str | Path, quick: bool = False, progress: bool = True, **options) -> dict:
        """Run; write figures, CSVs and ``summary.json`` into ``out_dir``; return the summary.

        The summary holds the measured numbers, ``verdicts`` (claim -> ``"held: ..."``
        or ``"did not hold: ..."``), ``files`` written and ``runtime_s``. ``options``
        (None values ignored) go to the runner; only names in :attr:`options` are accepted.
        """
        options = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"reproduction {self.name!r} takes no option(s) {unknown}; "
                             f"it takes {list(self.options) or 'none'}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        summary = self.runner(out, quick, progress, **options)
        summary = {"reproduction": self.name, "quick": quick, **options, **summary,
                   "runtime_s": round(time.perf_counter() - start, 2)}
        with atomic_write(out / "summary.json", "w") as fh:
            json.dump(summary, fh, indent=2, default=json_default)
        return summary

