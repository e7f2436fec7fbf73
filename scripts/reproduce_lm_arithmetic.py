"""Self-play on a real pretrained chat model (SmolLM2-135M-Instruct + LoRA) on arithmetic word problems.

Same as ``prefgym reproduce lm-arithmetic [--out DIR] [--quick] [--budget cpu|gpu] [--no-progress]``.
"""

import sys

from prefgym.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", "lm-arithmetic", *sys.argv[1:]]))
