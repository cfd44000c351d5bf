"""Upgrades: a data directory of the release before versioning (tests/fixtures/upgrade, made by that release's own
store.py) is migrated by this one and still reveals its pending epoch; a newer store or data directory is refused
untouched; a migration that fails, or a process killed in the middle of one, leaves the old database as it was and
the next start migrates it. And the minimum node release governance sets (OperatorRegistry.minNodeVersion) on a
real chain: the node's gate, /health, /status, the alert, and which services an outdated node still runs."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_node_services import (OPERATOR, PROTOCOL_ADDR, FakeContract, FakeSender,  # a sibling test module
                                assert_opens, tick_node)

from alignment_node import __version__
from alignment_node import protocol as P
from alignment_node.api.routes import NodeRoutes
from alignment_node.api.server import ApiServer
from alignment_node.chain.contracts import Contract, deploy_contract
from alignment_node.chain.rpc import RpcClient
from alignment_node.chain.tx import LocalSigner
from alignment_node.config import DEFAULT_SEVERITY, Config
from alignment_node.node import store as S
from alignment_node.node.alert_conditions import AlertConditions
from alignment_node.node.health import HealthService
from alignment_node.node.heartbeat import HeartbeatService
from alignment_node.node.metrics import NodeMetrics
from alignment_node.node.parts import Snapshot, TickView
from alignment_node.node.reveal import RevealService
from alignment_node.node.version_gate import VersionGate, decode_version, encode_version

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "upgrade"


def _fixture_script():
    spec = importlib.util.spec_from_file_location("make_store_v0", FIXTURE_DIR / "make_store_v0.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FX = _fixture_script()


def dump(path: Path) -> list[str]:
    """Every row and every schema object of the database (its committed state: the WAL included)."""
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump()) + [f"user_version={con.execute('PRAGMA user_version').fetchone()[0]}"]
    finally:
        con.close()


def user_version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def old_dir(tmp_path) -> Path:
    """A copy of the fixture's data directory (the node writes into the copy)."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE_DIR / "store-v0", data)
    return data


def test_the_fixture_is_a_store_of_the_release_before_versioning(old_dir):
    assert not (old_dir / S.VERSION_FILE).exists()
    assert user_version(old_dir / "node.sqlite") == 0
    assert S.schema_version() > 0


def test_an_old_data_directory_is_migrated_and_keeps_everything(old_dir):
    before = dump(old_dir / "node.sqlite")
    store = S.open_data_dir(old_dir)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == S.schema_version()
        assert store.get(S.RELEASE_KEY) == __version__
        # the pending reveal: every opening of the epoch, still committed, exactly as the old release stored it
        pending = store.openings(FX.PENDING_EPOCH)
        assert [o["license"] for o in pending] == sorted(FX.PENDING)
        for o in pending:
            targets, verdicts = FX.PENDING[o["license"]]
            salt = FX.salt_of(FX.PENDING_EPOCH, o["license"])
            roots = [bytes.fromhex(r[2:]) for r in o["roots"]]
            assert (o["state"], o["targets"], o["verdicts"], o["salt"]) == ("committed", targets, verdicts,
                                                                           "0x" + salt.hex())
            assert o["commitment"] == "0x" + FX.old_commitment(FX.PENDING_EPOCH, o["license"], targets, verdicts,
                                                               roots, salt).hex()
            # and the evidence behind each verdict, byte for byte
            for target, verdict, root in zip(targets, verdicts, o["roots"]):
                assert store.reader().evidence(root) == FX.bundle_of(FX.PENDING_EPOCH, target, verdict)
        assert {o["state"] for o in store.openings(FX.PENDING_EPOCH - 1)} == {"revealed"}
        assert store.counts() == {"mined": 5} and store.highest_nonce() == 4
        assert store.get("alerts.scan")["to"] == 150
        # the new index is there, and the query plan of highest_nonce uses it
        plan = " ".join(str(tuple(r)) for r in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT MAX(nonce) AS n FROM tx_journal WHERE state != 'dropped'"))
        assert "tx_journal_nonce" in plan
    finally:
        store.close()
    stamp = json.loads((old_dir / S.VERSION_FILE).read_text())
    assert stamp == {"format": S.DATA_FORMAT_VERSION, "schema": S.schema_version(), "release": __version__}
    # the copy kept before migrating is the old database, row for row
    assert dump(old_dir / "node.sqlite.v0.bak") == before
    # opening it again is a no-op: no second copy, same contents
    (old_dir / "node.sqlite.v0.bak").unlink()
    again = dump(old_dir / "node.sqlite")
    S.open_data_dir(old_dir).close()
    assert dump(old_dir / "node.sqlite") == again and not (old_dir / "node.sqlite.v0.bak").exists()


def test_the_migrated_pending_reveal_is_revealed(old_dir):
    """This release's reveal of the old store's epoch: the chain holds the operator's commitment of the epoch's
    listed votes (what this release commits) under the salt of one of its openings (the old release kept one salt
    per license and no record of a root, so the reveal tries the openings' salts). The root here is computed from
    the fixture's own values, not from the store."""
    rows = []
    for lic in sorted(FX.PENDING):
        targets, verdicts = FX.PENDING[lic]
        rows.append((lic, targets, verdicts, [P.keccak(FX.bundle_of(FX.PENDING_EPOCH, t, v))
                                              for t, v in zip(targets, verdicts)]))
    votes = P.sorted_votes(rows)
    assert [(lic, t, v) for lic, t, v, _r in votes] == [(5, 1, P.UNREACHABLE), (8, 1, P.FAULT), (3, 2, P.FAULT)]
    salt = FX.salt_of(FX.PENDING_EPOCH, 5)
    root = P.vote_commitment(FX.PENDING_EPOCH, OPERATOR, salt, votes)
    answers = {"revealWindow": (200, 210), "hasRevealed": False,
               "rootOf": lambda op, e: root if (op, e) == (OPERATOR, FX.PENDING_EPOCH) else bytes(32)}
    protocol = FakeContract("AuditProtocol", PROTOCOL_ADDR, answers)
    sender = FakeSender(protocol)
    store = S.open_data_dir(old_dir)
    try:
        node = SimpleNamespace(store=store, c={"AuditProtocol": protocol}, sender=sender, metrics=NodeMetrics(),
                               signer=SimpleNamespace(address=OPERATOR))
        asyncio.run(RevealService(node).reveal(FX.PENDING_EPOCH, 201))
        [(purpose, fn, args, _e)] = sender.sent
        assert (purpose, fn, args[:3]) == ("reveal", "reveal", (FX.PENDING_EPOCH, OPERATOR, salt))
        assert [tuple(v) for v in args[3]] == votes
        assert_opens(root, args)
        assert {o["state"] for o in store.openings(FX.PENDING_EPOCH)} == {"revealed"}
    finally:
        store.close()


def test_a_database_newer_than_this_release_is_refused_untouched(tmp_path):
    store = S.Store(tmp_path / "node.sqlite")
    store.put(S.RELEASE_KEY, "9.4.0")
    store.db.execute(f"PRAGMA user_version = {S.schema_version() + 1}")
    store.close()
    before = hashlib.sha256((tmp_path / "node.sqlite").read_bytes()).hexdigest()
    with pytest.raises(S.StoreVersionError) as err:
        S.Store(tmp_path / "node.sqlite")
    assert (f"written by alignment-node 9.4.0; this is alignment-node {__version__} (schema {S.schema_version()}): "
            "upgrade alignment-node") in str(err.value)
    assert hashlib.sha256((tmp_path / "node.sqlite").read_bytes()).hexdigest() == before
    assert user_version(tmp_path / "node.sqlite") == S.schema_version() + 1


def test_a_data_directory_of_a_newer_format_is_refused_before_its_store_is_opened(tmp_path):
    version = {"format": S.DATA_FORMAT_VERSION + 1, "schema": 99, "release": "3.0.0"}
    (tmp_path / S.VERSION_FILE).write_text(json.dumps(version))
    with pytest.raises(S.StoreVersionError, match=r"written by alignment-node 3\.0\.0; this is alignment-node "
                                                  rf"{__version__} .*: upgrade alignment-node"):
        S.open_data_dir(tmp_path)
    assert not (tmp_path / "node.sqlite").exists()
    assert json.loads((tmp_path / S.VERSION_FILE).read_text()) == version
    (tmp_path / S.VERSION_FILE).write_text("not json")
    with pytest.raises(S.StoreVersionError, match="not a data directory VERSION file"):
        S.open_data_dir(tmp_path)


def test_a_new_data_directory_is_stamped_with_this_release(tmp_path):
    S.open_data_dir(tmp_path / "fresh").close()
    assert json.loads((tmp_path / "fresh" / S.VERSION_FILE).read_text())["release"] == __version__
    assert user_version(tmp_path / "fresh" / "node.sqlite") == S.schema_version()
    assert not list((tmp_path / "fresh").glob("*.bak"))  # nothing to keep a copy of


def test_a_failing_migration_changes_nothing_and_the_next_start_migrates(old_dir, monkeypatch):
    before = dump(old_dir / "node.sqlite")

    def half_done(db):  # after the real migrations, one that fails half way through its writes
        db.execute("UPDATE openings SET state = 'missed'")
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(S, "MIGRATIONS", S.MIGRATIONS + [half_done])
    with pytest.raises(S.StoreVersionError, match=r"migration from schema 0 to \d+ failed and changed nothing "
                                                  r"\(a copy of it is node\.sqlite\.v0\.bak\): RuntimeError: disk"):
        S.open_data_dir(old_dir)
    assert dump(old_dir / "node.sqlite") == before
    monkeypatch.undo()
    store = S.open_data_dir(old_dir)
    try:
        assert {o["state"] for o in store.openings(FX.PENDING_EPOCH)} == {"committed"}
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == S.schema_version()
    finally:
        store.close()


def test_a_process_killed_in_the_middle_of_a_migration_leaves_the_old_database(old_dir):
    before = dump(old_dir / "node.sqlite")
    code = (
        "import os, signal\n"
        "from alignment_node.node import store as S\n"
        "def killed(db):\n"
        "    db.execute(\"UPDATE openings SET salt = '0x00'\")\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "S.MIGRATIONS.append(killed)\n"
        f"S.open_data_dir({str(old_dir)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert dump(old_dir / "node.sqlite") == before
    store = S.open_data_dir(old_dir)
    try:
        salts = {o["license"]: o["salt"] for o in store.openings(FX.PENDING_EPOCH)}
        assert salts == {lic: "0x" + FX.salt_of(FX.PENDING_EPOCH, lic).hex() for lic in FX.PENDING}
    finally:
        store.close()


def test_every_migration_is_idempotent(tmp_path):
    store = S.Store(tmp_path / "node.sqlite")
    try:
        schema = store.db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        for migration in S.MIGRATIONS:
            with store.transaction():
                migration(store.db)
        assert store.db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
    finally:
        store.close()


# ------------------------------------------------------------------------------- the minimum node release


def test_node_releases_are_numbered_as_on_chain():
    assert encode_version("1.2.3") == 0x010203 and decode_version(0x010203) == "1.2.3"
    assert decode_version(encode_version(__version__)) == __version__
    for bad in ("1.2", "1.2.3.4", "1.256.0", "v1.2.3", "1.-2.3"):
        with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
            encode_version(bad)


def _next_minor(release: str) -> str:
    major, minor, _patch = (int(p) for p in release.split("."))
    return f"{major}.{minor + 1}.0"


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_governances_minimum_on_a_real_chain_gates_the_node_health_status_and_alert(anvil, tmp_path):
    """OperatorRegistry deployed alone on anvil (its owner, the Timelock in a deployment, is the deployer here):
    the gate reads minNodeVersion at the first tick and at each new epoch, not in between."""
    owner = LocalSigner(anvil.private_keys[0])
    snapshot = Snapshot(operator=owner.address, last_tick=time.time())
    store = S.Store(tmp_path / "node.sqlite")
    api = None

    async def scenario():
        nonlocal api
        async with RpcClient(anvil.url) as rpc:
            registry, _ = await deploy_contract(rpc, "OperatorRegistry", [anvil.accounts[5], 0, owner.address],
                                                owner)
            parts = SimpleNamespace(cfg=Config(), snapshot=snapshot, c={"OperatorRegistry": registry}, store=store,
                                    signer=owner)
            gate, health = VersionGate(parts), HealthService(parts)
            api = ApiServer("127.0.0.1", 0, NodeRoutes(lambda: snapshot, health.health, store, tmp_path).table())
            api.start()
            base = f"http://127.0.0.1:{api.port}"
            alerts = AlertConditions(parts)

            assert await gate.tick(TickView(10, 4, snapshot)) is False  # no minimum yet
            assert snapshot.version_gate == {"release": __version__, "minimum": None, "outdated": False}
            assert await asyncio.to_thread(_get, base + "/health") == (200, {"status": "healthy", "reasons": []})

            required = _next_minor(__version__)
            await registry.transact("setMinNodeVersion", encode_version(required), signer=owner)
            assert await gate.tick(TickView(11, 4, snapshot)) is False  # read once per epoch
            assert await gate.tick(TickView(20, 5, snapshot)) is True
            assert snapshot.version_gate == {"release": __version__, "minimum": required, "outdated": True}
            status, body = await asyncio.to_thread(_get, base + "/health")
            assert status == 503 and body["status"] == "unhealthy"
            [reason] = body["reasons"]
            assert f"alignment-node {__version__} is below the minimum node release {required}" in reason
            assert "upgrade alignment-node" in reason
            status, body = await asyncio.to_thread(_get, base + "/status")
            assert status == 200 and body["version"] == {"release": __version__, "minimum": required,
                                                         "outdated": True}
            [condition] = alerts._outdated()
            assert condition.key == "node_outdated" and condition.summary == reason
            assert DEFAULT_SEVERITY["node_outdated"] == "critical"

            # governance lowers it to this very release: the node is in again from the next epoch's check
            await registry.transact("setMinNodeVersion", encode_version(__version__), signer=owner)
            assert await gate.tick(TickView(21, 5, snapshot)) is True
            assert await gate.tick(TickView(30, 6, snapshot)) is False
            assert snapshot.version_gate["minimum"] == __version__ and alerts._outdated() == []
            assert (await asyncio.to_thread(_get, base + "/health"))[0] == 200

    try:
        asyncio.run(scenario())
    finally:
        if api is not None:
            api.stop()
        store.close()


def _recording(cls, name: str, log: list):
    """An instance of the service class ``cls`` whose tick only records that it ran (Node.tick gates by class)."""

    async def tick(self, view=None):
        log.append(name)

    return type(f"Recording{cls.__name__}", (cls,), {"__init__": lambda self: None, "tick": tick})()


def test_an_outdated_node_runs_only_the_services_that_take_on_no_new_duty(tmp_path):
    from alignment_node.node.alert_conditions import AlertConditions as Alerts
    from alignment_node.node.node import SKIPPED_WHEN_OUTDATED
    from alignment_node.node.resume import ResumeService
    from alignment_node.node.rewards import RewardsService
    from alignment_node.node.settlement import SettlementService
    from alignment_node.node.verdicts import VerdictService

    classes = [HeartbeatService, RevealService, VerdictService, ResumeService, SettlementService, RewardsService,
               HealthService, Alerts]
    minimum = {"now": 0}
    node, _order, store = tick_node(tmp_path, [])
    registry = FakeContract("OperatorRegistry", "0x" + "44" * 20, {"minNodeVersion": lambda: minimum["now"]})
    node.gate = VersionGate(SimpleNamespace(snapshot=node.parts.snapshot, c={"OperatorRegistry": registry}))
    ran: list[str] = []
    node.services = [_recording(cls, cls.__name__, ran) for cls in classes]
    try:
        asyncio.run(node.tick())
        assert ran == [cls.__name__ for cls in classes]
        minimum["now"] = encode_version(_next_minor(__version__))
        node.parts.snapshot.head_block, node.gate._epoch = None, None  # a new head of a new epoch
        ran.clear()
        asyncio.run(node.tick())
        assert ran == ["RevealService", "RewardsService", "HealthService", "AlertConditions"]
        assert {c.__name__ for c in SKIPPED_WHEN_OUTDATED} == {
            "HeartbeatService", "VerdictService", "ResumeService", "SettlementService"}
    finally:
        store.close()


def test_a_registry_deployed_before_the_minimum_existed_means_no_minimum(anvil, caplog):
    """A deployment whose registry has no minNodeVersion (here a contract without it, behind the new ABI): the
    call reverts, and the gate logs it and lets the node run."""
    owner = LocalSigner(anvil.private_keys[0])
    snapshot = Snapshot(operator=owner.address)

    async def scenario():
        async with RpcClient(anvil.url) as rpc:
            other, _ = await deploy_contract(rpc, "TargetRegistry", [owner.address, owner.address], owner)
            old = Contract(rpc, other.address, Contract.from_artifact(None, "OperatorRegistry", other.address).abi,
                           "OperatorRegistry")
            gate = VersionGate(SimpleNamespace(snapshot=snapshot, c={"OperatorRegistry": old}))
            return await gate.tick(TickView(1, 1, snapshot))

    assert asyncio.run(scenario()) is False
    assert snapshot.version_gate == {"release": __version__, "minimum": None, "outdated": False}
    assert "no minimum node release on chain" in caplog.text
