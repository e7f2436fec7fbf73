"""Compare two output folders of the same reproduction(s), e.g. before and after a refactor.

    python scripts/compare_reproductions.py OLD NEW            # OLD/NAME and NEW/NAME for every NAME in both
    python scripts/compare_reproductions.py OLD/omwu-fig2 NEW/omwu-fig2

For each reproduction folder: every CSV (wall-time columns ``time_s`` / ``*_s`` ignored) and
``summary.json`` (file paths, timings and load averages ignored) are compared value by value. Prints one row
per reproduction: identical, or the number of differing values, the largest absolute difference
and the verdicts that changed. Exit code 0 either way (a difference is a finding, not an error).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

IGNORED_KEYS = {"files", "runtime_s", "runtime_training_s", "time_s", "created"}


def _ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.endswith("_s") or "wall_s" in key or "load_average" in key


def _leaves(obj, prefix=""):
    """``(path, value)`` of every scalar in a JSON document, timing and path keys left out."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not _ignored(str(k)):
                yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), obj


def _csv_leaves(path: Path):
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            for k, v in row.items():
                if not _ignored(k):
                    yield f"{path.name}:{i}:{k}", v


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def compare(old: Path, new: Path) -> dict:
    """Differences between two folders of one reproduction."""
    a, b = {}, {}
    for folder, out in ((old, a), (new, b)):
        for csv_path in sorted(folder.glob("*.csv")):
            out.update(_csv_leaves(csv_path))
        if (folder / "summary.json").exists():
            out.update(_leaves(json.loads((folder / "summary.json").read_text()), "summary:"))
    diffs, largest = [], 0.0
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        fx, fy = _number(x), _number(y)
        if fx is not None and fy is not None and (fx == fy or (math.isnan(fx) and math.isnan(fy))):
            continue
        diffs.append(key)
        if fx is not None and fy is not None:
            largest = max(largest, abs(fx - fy))
    verdicts = [k.split("verdicts.", 1)[1][:80] for k in diffs if "verdicts." in k
                and str(a.get(k, "")).split(":")[0] != str(b.get(k, "")).split(":")[0]]
    return {"values": len(a), "differing": len(diffs), "largest": largest, "verdicts_changed": verdicts,
            "first": diffs[:3]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if (args.old / "summary.json").exists():
        pairs = [(args.old.name, args.old, args.new)]
    else:
        names = sorted(p.name for p in args.old.iterdir() if (args.new / p.name).is_dir())
        pairs = [(n, args.old / n, args.new / n) for n in names]
    print("| reproduction | values compared | differing | largest difference | verdicts changed |")
    print("|---|---|---|---|---|")
    for name, old, new in pairs:
        r = compare(old, new)
        changed = "; ".join(r["verdicts_changed"]) or "none"
        diff = "identical" if not r["differing"] else f"{r['differing']} (e.g. {r['first'][0]})"
        print(f"| {name} | {r['values']} | {diff} | {r['largest']:.3g} | {changed} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
