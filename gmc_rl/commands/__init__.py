"""Subcommands of the ``gmc-rl`` command line (see :mod:`gmc_rl.cli`)."""
