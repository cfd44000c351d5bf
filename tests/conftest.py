"""Shared fixtures: a real anvil on a loopback port (alignment_node/devnet/anvil.py); and how the tests share 2
workers (pytest-xdist, ``scripts/test.sh``): the tests that keep a core busy (model training, torch, the
referee) form one group, so at most one runs at a time and the devnet tests, which mostly wait for blocks, keep
the other core; every other module is a group of its own (its module fixtures are set up once)."""

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


CPU_BOUND = {"test_blackbox", "test_llmserver", "test_model_audit", "test_model_server", "test_model_stats",
             "test_models_doctest", "test_models_lm", "test_referee", "test_referee_chain", "test_served_audit",
             "test_tee", "test_tokenlm", "test_verify_evidence", "test_evm_fuzz", "test_zgs_fuzz", "test_da_bls"}


# Modules that share a resource run in one group: both build and run the container image (one podman build at a time).
SHARED_GROUPS = {"test_container": "container", "test_join_network": "container"}


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        item.add_marker(pytest.mark.xdist_group("cpu" if module in CPU_BOUND else SHARED_GROUPS.get(module, module)))
