"""Reproduce the menu game on a tiny LM (issue 5: 002's neural experiment with a transformer policy).

Same as ``prefgym reproduce llm-menu [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "llm-menu", *sys.argv[1:]]))
