"""Load a dataset from where it lives: a gmc-rl dataset directory, or a Minari dataset (``"minari:<id>"``).

:mod:`gmc_rl.data` reads and writes the project's own format and knows nothing of Minari; :mod:`gmc_rl.minari_data`
converts Minari datasets (the optional package ``minari``, imported only when one is loaded). This module sits above
both and picks one by the source's spelling, so the commands and the pretraining accept either.

Example::

    from gmc_rl.dataset_sources import load_dataset
    data = load_dataset("runs/pendulum/data")                          # a directory written by gmc-rl collect
    data = load_dataset("minari:gmc_rl/pendulum-sound-random-v0")      # needs pip install -e ".[minari]"
"""

from __future__ import annotations

import os

from gmc_rl import data
from gmc_rl.data import MINARI_PREFIX, MultimodalDataset
from gmc_rl.minari_data import load_minari_dataset


def load_dataset(source: str | os.PathLike) -> MultimodalDataset:
    """The dataset at ``source``: ``"minari:<id>"`` (:func:`gmc_rl.minari_data.load_minari_dataset`) or a dataset
    directory (:func:`gmc_rl.data.load_dataset`); raises what those raise."""
    if isinstance(source, str) and source.startswith(MINARI_PREFIX):
        return load_minari_dataset(source[len(MINARI_PREFIX):])
    return data.load_dataset(source)
