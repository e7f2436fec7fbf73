"""Reproduce 004's exact results: Examples 1-2 (Figure 9), tabular Algorithm 1 (Theorem 4.1), Lemma 4.1.

Same as ``prefgym reproduce aihf-examples [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "aihf-examples", *sys.argv[1:]]))
