"""``python -m prefgym.data.control STEP ...``: the data commands without the ``prefgym`` entry point."""

import sys

from prefgym.data.control.cli import main

sys.exit(main())
