"""PPO self-play (SB3, snapshot pools) vs OMPO on random gridworlds, exact exploitability.

Same as ``prefgym reproduce selfplay-gridworld [--out DIR] [--quick] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "selfplay-gridworld", *sys.argv[1:]]))
