"""Write the registry's generated docs: the README's agent table and docs/algorithms.md.

    python scripts/generate_algorithm_docs.py          # rewrite both
    python scripts/generate_algorithm_docs.py --check  # exit 1 if either is stale

Run it after adding or changing a spec in prefgym/algorithms/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefgym.algorithms import SPECS
from prefgym.algorithms.docs import README_BEGIN, README_END, algorithms_page, readme_table
from prefgym.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def generated() -> dict[Path, str]:
    """Path -> its text with the generated parts as they should be."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(README_BEGIN), readme.index(README_END) + len(README_END)
    return {ROOT / "README.md": readme[:start] + readme_table(SPECS) + readme[end:],
            ROOT / "docs" / "algorithms.md": algorithms_page(SPECS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                atomic_write_text(path, text)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(map(str, stale))}" if stale else "up to date")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
