"""The examples in the docstrings of the envs package run as written."""

import doctest
import importlib

import pytest

MODULES = ["envs", "envs.sound", "envs.drawing", "envs.stacking", "envs.pendulum_sound"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
