"""``python -m gmc_rl``: the ``gmc-rl`` command line (:func:`gmc_rl.cli.main`), for environments without the script."""

from __future__ import annotations

import sys

from gmc_rl.cli import main

if __name__ == "__main__":
    sys.exit(main())
