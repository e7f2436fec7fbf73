"""Reproduce 3-step arithmetic reasoning on a tiny LM (issue 5, item 4: OMPO and MPO beat the base model).

Same as ``prefgym reproduce llm-reasoning [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "llm-reasoning", *sys.argv[1:]]))
