"""The examples in the docstrings of the models' pure modules (stats, drift, baseline, blackbox) run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ("alignment_node.models.stats", "alignment_node.models.drift", "alignment_node.models.baseline",
           "alignment_node.models.blackbox")


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.attempted > 0, f"{name} has no doctest examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples of {name} failed"
