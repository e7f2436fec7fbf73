"""Reproduce 001 Figure 1a (OMPO vs MPO on 10 random gridworlds).

Same as ``prefgym reproduce ompo-gridworld [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "ompo-gridworld", *sys.argv[1:]]))
