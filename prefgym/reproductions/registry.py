"""The :class:`Reproduction` record: a named paper claim and the function that checks it.

A reproduction draws one progress bar (:class:`ReproductionProgress`): :meth:`Reproduction.run`
creates it and hands it to the runner as ``progress``; the runner trains its agents with
``progress_bar=False`` and calls ``progress.update()`` after each training run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prefgym.fileio import atomic_write
from prefgym.serialization import json_default

__all__ = ["Reproduction", "ReproductionProgress", "as_progress"]


class ReproductionProgress:
    """The one progress bar of a reproduction: finished training runs, with the current one named.

    Disabled, it draws nothing and is falsy (``if progress:`` reads as before). ``total`` may be
    set (or raised) once the runner knows how many runs it will make.
    """

    def __init__(self, name: str, enabled: bool = True, total: int | None = None) -> None:
        self.name = name
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=name, unit="run", mininterval=0.5, dynamic_ncols=True)

    def __bool__(self) -> bool:
        return self._bar is not None

    @property
    def total(self) -> int | None:
        return None if self._bar is None else self._bar.total

    @total.setter
    def total(self, total: int | None) -> None:
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1, label: str | None = None) -> None:
        """Count ``n`` finished runs; ``label`` (e.g. ``"omwu eta=2"``) shows beside the bar."""
        if self._bar is not None:
            if label is not None:
                self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def write(self, text: str) -> None:
        """Print a line above the bar (nothing when disabled)."""
        if self._bar is not None:
            self._bar.write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def as_progress(progress: bool | ReproductionProgress, name: str) -> ReproductionProgress:
    """``progress`` itself, or a new bar named ``name`` if a bool was passed (a runner called directly)."""
    if isinstance(progress, ReproductionProgress):
        return progress
    return ReproductionProgress(name, enabled=bool(progress))


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
        ``progress`` is the reproduction's one :class:`ReproductionProgress` bar.
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
        bar = ReproductionProgress(self.name + (" (quick)" if quick else ""), enabled=progress)
        try:
            summary = self.runner(out, quick, bar, **options)
        finally:
            bar.close()
        summary = {"reproduction": self.name, "quick": quick, **options, **summary,
                   "runtime_s": round(time.perf_counter() - start, 2)}
        with atomic_write(out / "summary.json", "w") as fh:
            json.dump(summary, fh, indent=2, default=json_default)
        return summary

