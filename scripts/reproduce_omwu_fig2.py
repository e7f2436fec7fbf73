"""Reproduce 002 Figure 2 (tabular).

Same as ``prefgym reproduce omwu-fig2 [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "omwu-fig2", *sys.argv[1:]]))
