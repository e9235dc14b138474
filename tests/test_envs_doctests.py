"""The examples in the docstrings of the envs package (gmc_rl.envs) run as written."""

import doctest
import importlib

import pytest

MODULES = ["gmc_rl.envs", "gmc_rl.envs.sound", "gmc_rl.envs.drawing", "gmc_rl.envs.stacking",
           "gmc_rl.envs.pendulum_sound"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
