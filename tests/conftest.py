"""Shared fixtures: a real anvil on a loopback port (alignment_node/devnet/anvil.py)."""

from __future__ import annotations

import pytest

from alignment_node.devnet.anvil import Anvil, AnvilError, find_anvil


def _require_anvil() -> None:
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def anvil():
    """A fresh automining anvil for one test; stopped (no process left) afterwards."""
    _require_anvil()
    with Anvil() as node:
        yield node


@pytest.fixture(scope="session")
def anvil_session():
    """One automining anvil shared by the whole session (for tests that do not care about state)."""
    _require_anvil()
    with Anvil() as node:
        yield node
