"""Per-phase timing of a self-play iteration (generation, judging, log-probs, forward, backward, ...).

:class:`PhaseTimes` accumulates, per named phase, the wall-clock seconds
(``time.perf_counter``) and the process CPU seconds (``time.process_time``) spent
inside ``with times.phase(name):`` blocks. Phases nest *exclusively*: while an inner
phase runs, the outer one is paused, so the phases of one iteration add up to the
time spent inside any of them (no double counting). On a CUDA device the device is
synchronised at each phase boundary, so the queued kernels are charged to the phase
that launched them. Timing only observes: nothing computed changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

__all__ = ["PhaseTimes", "phase"]


class PhaseTimes:
    """Exclusive wall and CPU seconds per phase; see the module docs.

    Attributes
    ----------
    wall, cpu
        ``{phase: seconds}`` in the order the phases first ran.
    """

    def __init__(self, device: torch.device | str | None = None):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[str] = []
        self._mark = (0.0, 0.0)
        self._cuda = device is not None and torch.device(device).type == "cuda"

    def _now(self) -> tuple[float, float]:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def _charge(self, now: tuple[float, float]) -> None:
        if self._stack:
            name = self._stack[-1]
            self.wall[name] = self.wall.get(name, 0.0) + now[0] - self._mark[0]
            self.cpu[name] = self.cpu.get(name, 0.0) + now[1] - self._mark[1]
        self._mark = now

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the time inside the block (less nested phases) to ``name``."""
        self._charge(self._now())
        self._stack.append(name)
        self.wall.setdefault(name, 0.0)
        self.cpu.setdefault(name, 0.0)
        try:
            yield
        finally:
            self._charge(self._now())
            self._stack.pop()

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{"wall": {...}, "cpu": {...}}`` (copies)."""
        return {"wall": dict(self.wall), "cpu": dict(self.cpu)}


def phase(times: PhaseTimes | None, name: str):
    """``times.phase(name)``, or a no-op context when ``times`` is ``None``."""
    return contextlib.nullcontext() if times is None else times.phase(name)
