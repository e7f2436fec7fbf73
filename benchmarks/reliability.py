"""How prefgym answers bad input: the counts behind RELIABILITY.md.

Run from the repository root::

    python benchmarks/reliability.py                  # 100 examples per test, as the test run
    python benchmarks/reliability.py --examples 1000  # a deeper search (about 3 minutes)

1. Runs the hypothesis property suite (``tests/test_properties*.py``) with
   ``PREFGYM_PROPERTY_EXAMPLES`` examples per test and ``PREFGYM_RELIABILITY_OUT``
   set, so :mod:`tests.outcomes` writes the outcome of every generated input per
   target: worked, clear error (a ``prefgym.errors`` type), other exception,
   silent wrong result, hang (over 10 s).
2. Runs the files-and-runs tests (``tests/test_safe_files.py``: crafted payload
   files that must not run, ``tests/test_kill_resume.py``: runs SIGKILLed at
   several moments) where they exist, and counts their failures as "code
   executed" / "runs lost" (each of their tests fails if a payload ran or a run
   was lost).
3. Prints one markdown table per target, the totals and the wall time.

Exit code 0 when every count of a defect is zero.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROPERTY_FILES = ["tests/test_properties.py", "tests/test_properties_envs_data.py"]
SAFETY_FILES = {"code executed": "tests/test_safe_files.py", "runs lost": "tests/test_kill_resume.py"}
DEFECTS = ("other_exception", "silent_wrong", "hang")


def _pytest(files: list[str], env: dict[str, str]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:warnings", "-p", "no:cacheprovider", *files]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def _summary_counts(output: str) -> dict[str, int]:
    counts = {}
    for number, word in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", output):
        counts[word.rstrip("s") if word == "errors" else word] = int(number)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="hypothesis examples per property test")
    parser.add_argument("--json", default=None, help="also write the counts to this JSON file")
    args = parser.parse_args(argv)

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PREFGYM_PROPERTY_EXAMPLES=str(args.examples))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outcomes.json"
        code, log = _pytest(PROPERTY_FILES, dict(env, PREFGYM_RELIABILITY_OUT=str(out)))
        data = json.loads(out.read_text()) if out.exists() else {"counts": {}, "examples": {}}
    prop_seconds = time.perf_counter() - start

    rows = data["counts"]
    cols = ("worked", "clear_error", "other_exception", "silent_wrong", "hang")
    print(f"## Property suite: {args.examples} examples per test ({prop_seconds:.0f} s)\n")
    print("| target | cases | worked | clear errors | other exceptions | silent wrong | hangs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    totals = dict.fromkeys(cols, 0)
    for target in sorted(rows):
        r = rows[target]
        for c in cols:
            totals[c] += r.get(c, 0)
        print(f"| {target} | {sum(r.get(c, 0) for c in cols)} | " + " | ".join(str(r.get(c, 0)) for c in cols)
              + " |")
    print(f"| **all** | **{sum(totals.values())}** | " + " | ".join(f"**{totals[c]}**" for c in cols) + " |")
    if code != 0:
        print("\nThe property suite FAILED:\n" + log[-3000:])
    for target, examples in sorted(data.get("examples", {}).items()):
        for e in examples[:3]:
            print(f"- {target}: {e}")

    print("\n## Files and runs\n")
    print("| count | test file | tests | failures |")
    print("|---|---|---:|---:|")
    safety_failures = 0
    for label, path in SAFETY_FILES.items():
        if not (ROOT / path).exists():
            print(f"| {label} | {path} | not present | - |")
            continue
        c, log2 = _pytest([path], env)
        n = _summary_counts(log2)
        fails = n.get("failed", 0) + n.get("error", 0) + (1 if c not in (0, 5) and not n else 0)
        safety_failures += fails
        print(f"| {label} | {path} | {sum(n.values())} | {fails} |")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")

    summary = {"examples": args.examples, "counts": rows, "totals": totals,
               "safety_failures": safety_failures, "property_suite_exit": code}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, sort_keys=True))
    return 0 if code == 0 and not any(totals[d] for d in DEFECTS) and not safety_failures else 1


if __name__ == "__main__":
    sys.exit(main())
