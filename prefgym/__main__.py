"""``python -m prefgym``: the ``prefgym`` command."""

import sys

from prefgym.cli import main

sys.exit(main())
