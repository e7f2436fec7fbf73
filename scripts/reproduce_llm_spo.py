"""Reproduce SPO's Theorem 1 on a tiny LM (003: the trained distribution approaches Softmax(r / alpha)).

Same as ``prefgym reproduce llm-spo [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "llm-spo", *sys.argv[1:]]))
