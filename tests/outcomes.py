"""Counting what happens to each generated input of the property suite.

Every property test sends its input through :func:`attempt`, which classifies
the outcome per *target* (a public constructor, an env's ``step``, a loader):

- ``worked``: the call returned and the result passed the test's checks;
- ``clear_error``: the call raised one of :mod:`prefgym.errors`' types;
- ``other_exception``: anything else escaped (a defect);
- ``silent_wrong``: the call returned a result that failed its checks (a defect);
- ``hang``: the call took longer than ``HANG_SECONDS`` (a defect).

The test then fails on a defect. With ``PREFGYM_RELIABILITY_OUT=path`` set, the
counts are written to ``path`` as JSON when the process exits
(``benchmarks/reliability.py`` runs the suite that way and prints the table).
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from prefgym.errors import PrefgymError

HANG_SECONDS = 10.0
OUTCOMES = ("worked", "clear_error", "other_exception", "silent_wrong", "hang")

COUNTS: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
EXAMPLES: dict[str, list[str]] = defaultdict(list)


class SilentWrongResult(AssertionError):
    """A call returned, but its result broke an invariant the test checks."""


def attempt(target: str, call: Callable[[], Any], check: Callable[[Any], None] | None = None,
            describe: str = "") -> Any:
    """Run ``call()``, record its outcome under ``target``, and fail the test on a defect.

    ``check(result)`` raises ``AssertionError`` if the result is wrong. Returns the
    result, or None after a clear error.
    """
    start = time.perf_counter()
    outcome, error, result = "worked", None, None
    try:
        result = call()
    except PrefgymError:
        outcome = "clear_error"
    except Exception as exc:  # noqa: BLE001 - counting every escape is the point
        outcome, error = "other_exception", exc
    if outcome == "worked" and check is not None:
        try:
            check(result)
        except AssertionError as exc:
            outcome, error = "silent_wrong", exc
    if time.perf_counter() - start > HANG_SECONDS:
        outcome = "hang"
    COUNTS[target][outcome] += 1
    if outcome in ("other_exception", "silent_wrong", "hang") and len(EXAMPLES[target]) < 5:
        EXAMPLES[target].append(f"{outcome}: {type(error).__name__}: {error} ({describe[:200]})")
    if outcome == "other_exception":
        raise AssertionError(f"{target}: {type(error).__name__} escaped ({describe[:200]})") from error
    if outcome == "silent_wrong":
        raise SilentWrongResult(f"{target}: wrong result accepted silently: {error} ({describe[:200]})")
    if outcome == "hang":
        raise AssertionError(f"{target}: took more than {HANG_SECONDS} s ({describe[:200]})")
    return result


def _dump() -> None:
    path = os.environ.get("PREFGYM_RELIABILITY_OUT")
    if not path or not COUNTS:
        return
    previous: dict[str, Any] = {}
    if os.path.exists(path):  # several processes may add to one file
        with open(path) as f:
            previous = json.load(f)
    counts = previous.get("counts", {})
    for target, row in COUNTS.items():
        merged = counts.setdefault(target, dict.fromkeys(OUTCOMES, 0))
        for k, v in row.items():
            merged[k] = merged.get(k, 0) + v
    examples = previous.get("examples", {})
    for target, rows in EXAMPLES.items():
        examples.setdefault(target, []).extend(rows)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"counts": counts, "examples": examples}, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


atexit.register(_dump)
