"""Reproduce 000 Figure 3.

Same as ``prefgym reproduce mpo-fig3 [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "mpo-fig3", *sys.argv[1:]]))
