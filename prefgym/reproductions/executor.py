"""Run a sweep's independent runs (method x seed x task): a local process pool, or Ray for a cluster.

>>> ex = make_executor("process", workers=2)  # doctest: +SKIP
>>> results = ex.run(train_and_evaluate, jobs)  # in job order, whatever finishes first  # doctest: +SKIP
>>> ex = make_executor("ray", address="auto", resources=Resources(1, 0.25))  # doctest: +SKIP

Every executor returns the results **in job order**, so the CSV / JSON / figure a
reproduction writes from them does not depend on which run finished first. A run is a
picklable module-level function of one picklable job dict; it must seed everything it
uses from the job (the runs of :mod:`~prefgym.reproductions.aihf_mujoco` set one torch
thread and pass the job's seed to every component), so the process pool and Ray give the
same numbers.

- :class:`LocalExecutor`: ``workers <= 1`` runs in this process, one after the other;
  more uses a ``spawn`` process pool (fresh interpreters, no inherited thread state).
- :class:`RayExecutor`: each run is one Ray task with its :class:`Resources` request
  (``num_cpus``, ``num_gpus``); ``address=None`` starts a local Ray instance
  (``num_cpus`` CPUs), ``"auto"`` joins the cluster this machine belongs to, and
  ``"HOST:PORT"`` (or ``ray://HOST:10001``) joins a remote head node. ``ray`` is the
  ``ray`` extra; the cluster's nodes need prefgym installed (or pass ``runtime_env``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from prefgym.errors import InvalidArgumentError

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "Resources", "make_executor"]

EXECUTORS = ("process", "ray")


@dataclass(frozen=True)
class Resources:
    """What one run asks the scheduler for (Ray's ``num_cpus`` / ``num_gpus`` of a task)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def __post_init__(self):
        if not self.num_cpus >= 0 or not self.num_gpus >= 0:
            raise InvalidArgumentError(f"num_cpus and num_gpus must be >= 0; got {self.num_cpus}, "
                                       f"{self.num_gpus}")


class Executor:
    """Runs ``fn(job)`` for every job; subclasses implement :meth:`imap_unordered`."""

    name = "executor"

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: list) -> Iterator[tuple[int, Any]]:
        """Yield ``(job index, result)`` as runs finish."""
        raise NotImplementedError

    def run(self, fn: Callable[[Any], Any], jobs: Iterable,
            on_result: Callable[[Any], None] | None = None) -> list:
        """All results, in job order; ``on_result(result)`` is called as each run finishes."""
        jobs = list(jobs)
        results: list[Any] = [None] * len(jobs)
        for i, result in self.imap_unordered(fn, jobs):
            results[i] = result
            if on_result is not None:
                on_result(result)
        return results

    def describe(self) -> dict[str, Any]:
        """What ran the sweep (recorded in a reproduction's summary)."""
        return {"executor": self.name}


class LocalExecutor(Executor):
    """This machine: in-process for ``workers <= 1``, else a ``spawn`` process pool of ``workers``."""

    name = "process"

    def __init__(self, workers: int = 1):
        if int(workers) < 1:
            raise InvalidArgumentError(f"workers must be >= 1; got {workers}")
        self.workers = int(workers)

    def imap_unordered(self, fn, jobs):
        if self.workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                yield i, fn(job)
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)), mp_context=ctx) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()

    def describe(self):
        return {"executor": self.name, "workers": self.workers}


class RayExecutor(Executor):
    """Each run is a Ray task requesting ``resources``; see the module docstring for ``address``.

    Parameters
    ----------
    address
        None (start a local instance), ``"auto"`` or ``"HOST:PORT"`` / ``"ray://HOST:PORT"``.
    resources
        Per-run request (default 1 CPU, no GPU).
    num_cpus
        CPUs of a *local* instance (``address=None``); default all of this machine's.
    runtime_env
        Ray runtime environment for the tasks (e.g. ``{"pip": ["prefgym[mujoco]"]}``).
    shutdown
        Shut Ray down after the sweep if this executor started or connected it.
    """

    name = "ray"

    def __init__(self, address: str | None = None, resources: Resources | None = None,
                 num_cpus: int | None = None, runtime_env: dict | None = None, shutdown: bool = True):
        from prefgym.optional import require

        self.ray = require("ray", "ray")
        self.address = address
        self.resources = resources or Resources()
        self.num_cpus = num_cpus
        self.runtime_env = runtime_env
        self.shutdown = shutdown

    def _init(self) -> bool:
        ray = self.ray
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        if self.address is None:
            kwargs["num_cpus"] = self.num_cpus
        else:
            kwargs["address"] = self.address
        ray.init(**kwargs)
        return True

    def imap_unordered(self, fn, jobs):
        ray = self.ray
        started = self._init()
        try:
            task = ray.remote(num_cpus=self.resources.num_cpus, num_gpus=self.resources.num_gpus)(fn)
            pending = {task.remote(job): i for i, job in enumerate(jobs)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        finally:
            if started and self.shutdown:
                ray.shutdown()

    def describe(self):
        return {"executor": self.name, "address": self.address, "num_cpus_per_run": self.resources.num_cpus,
                "num_gpus_per_run": self.resources.num_gpus}


def make_executor(kind: str | None = "process", workers: int = 1, address: str | None = None,
                  resources: Resources | None = None, num_cpus: int | None = None) -> Executor:
    """``"process"`` (default) -> :class:`LocalExecutor`; ``"ray"`` -> :class:`RayExecutor`.

    ``address`` is only for Ray (``--executor ray --address auto|HOST:PORT``).
    """
    kind = kind or "process"
    if kind not in EXECUTORS:
        raise InvalidArgumentError(f"executor must be one of {EXECUTORS}; got {kind!r}")
    if kind == "process":
        if address is not None:
            raise InvalidArgumentError(f"address={address!r} is for --executor ray, not the local process "
                                       "pool")
        return LocalExecutor(workers)
    return RayExecutor(address=address, resources=resources, num_cpus=num_cpus)
