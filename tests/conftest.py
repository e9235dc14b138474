"""Shared pytest setup: single-threaded torch (CI has 2 cores) and headless rendering."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
