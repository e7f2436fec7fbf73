"""Reproduce 004 Figure 5 / Table 1 (AIHF vs RLHF vs IRL-only on MuJoCo Hopper-v5).

Same as ``prefgym reproduce aihf-mujoco [--budget quick|small|paper] [--env ENV] [--out DIR]
[--no-progress]``; the small budget takes about 25 minutes on 2 CPU cores.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "aihf-mujoco", *sys.argv[1:]]))
