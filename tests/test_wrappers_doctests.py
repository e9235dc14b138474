"""The examples in the wrappers' docstrings run as written (those that need a trained GMC checkpoint are marked
``+SKIP`` and are exercised by the wrapper tests instead)."""

import doctest
import importlib

import pytest

MODULES = ["gmc_rl.wrappers.corruption", "gmc_rl.wrappers.dropout", "gmc_rl.wrappers.nonfinite",
           "gmc_rl.wrappers.state", "gmc_rl.wrappers.conditions"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
