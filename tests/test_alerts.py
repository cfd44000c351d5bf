"""Alerts: webhook formats, dedup, flap suppression, resolution, restart persistence, delivery retries and
redaction, against a real local webhook receiver (a ThreadingHTTPServer on 127.0.0.1) and real SQLite files."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alignment_node.config import AlertsConfig, ConfigError, WebhookConfig, load_config
from alignment_node.node.alert_delivery import AlertEngine, Condition
from alignment_node.node.store import Store

SECRET = "T000/B000/s3cr3t-t0k3n"


class Receiver:
    """Records every POST (path, JSON body); answers a path with the statuses scripted for it, then 200."""

    def __init__(self):
        self.requests: list[tuple[str, dict]] = []
        self.script: dict[str, list[int]] = {}
        self.delay: dict[str, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (stdlib name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.changed:
                    script = receiver.script.get(self.path)
                    status = script.pop(0) if script else 200
                    receiver.requests.append((self.path, body))
                    receiver.changed.notify_all()
                time.sleep(receiver.delay.get(self.path, 0.0))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (the slow receiver)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict]:
        with self.changed:
            return [b for p, b in self.requests if p == path]

    def wait(self, path: str, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len([1 for p, _ in self.requests if p == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{path}: {len(self.bodies(path))} requests, expected {count}")
                self.changed.wait(left)
        return self.bodies(path)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def engine_for(store: Store, *hooks: WebhookConfig, retry_base_s: float = 0.05, **settings) -> AlertEngine:
    settings.setdefault("resolve_after_s", 0.0)
    return AlertEngine(AlertsConfig(webhooks=list(hooks), **settings), store, "node-a", retry_base_s=retry_base_s)


async def deliver(engine: AlertEngine, timeout: float = 5.0) -> None:
    """Run the engine's senders until nothing is left to deliver."""
    engine.start()
    try:
        deadline = time.monotonic() + timeout
        while engine.pending():
            assert time.monotonic() < deadline, f"{engine.pending()} notifications still undelivered"
            await asyncio.sleep(0.02)
    finally:
        await engine.stop()


LOW = Condition("low_balance", "operator gas balance 5 wei is below 10 wei: fund <0xabc> & co",
                {"balance_wei": "5", "licenses": [1, 2]})


def test_each_webhook_format_fires_then_resolves(tmp_path, receiver):
    store = Store(tmp_path / "node.sqlite")
    engine = engine_for(store, WebhookConfig("discord", receiver.url(f"/api/webhooks/{SECRET}")),
                        WebhookConfig("slack", receiver.url(f"/services/{SECRET}")),
                        WebhookConfig("telegram", receiver.url("/bot123:ABC"), chat_id="-1001"),
                        WebhookConfig("json", receiver.url("/hook")))
    assert [n.event for n in engine.report("low_balance", [LOW], now=1000.0)] == ["firing"]
    assert [n.event for n in engine.report("low_balance", [], now=1001.0)] == ["resolved"]
    asyncio.run(deliver(engine))

    fired, resolved = receiver.bodies(f"/api/webhooks/{SECRET}")
    assert fired["content"].startswith("FIRING: Low gas balance (critical)")
    embed = fired["embeds"][0]
    assert embed["description"] == LOW.summary and embed["timestamp"] == "1970-01-01T00:16:40Z"
    assert {"name": "balance_wei", "value": "5", "inline": True} in embed["fields"]
    assert fired["allowed_mentions"] == {"parse": []}
    assert resolved["content"].startswith("RESOLVED") and resolved["embeds"][0]["color"] != embed["color"]

    fired, resolved = receiver.bodies(f"/services/{SECRET}")
    assert fired["text"].startswith("FIRING") and fired["blocks"][0]["type"] == "header"
    assert "&lt;0xabc&gt; &amp; co" in fired["blocks"][1]["text"]["text"]  # mrkdwn control characters escaped
    assert resolved["blocks"][0]["text"]["text"].startswith("RESOLVED")

    fired, resolved = receiver.bodies("/bot123:ABC/sendMessage")
    assert fired["chat_id"] == "-1001" and fired["parse_mode"] == "HTML"
    assert fired["text"].startswith("<b>FIRING: Low gas balance (critical)</b>")
    assert "&lt;0xabc&gt; &amp; co" in fired["text"] and "<code>[1, 2]</code>" in fired["text"]
    assert resolved["text"].startswith("<b>RESOLVED")

    fired, resolved = receiver.bodies("/hook")
    assert fired == {"alert": "low_balance", "key": "low_balance", "severity": "critical", "state": "firing",
                     "flapping": False, "summary": LOW.summary, "details": LOW.details, "node": "node-a",
                     "time": "1970-01-01T00:16:40Z"}
    assert resolved["state"] == "resolved" and resolved["time"] == "1970-01-01T00:16:41Z"


def test_an_alert_that_keeps_firing_is_sent_once(tmp_path, receiver):
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("json", receiver.url("/hook")))
    flagged = [Condition("target_flagged:7", "target 7 was flagged FAULT in epoch 3", {"target": 7})]
    assert len(engine.report("target_flagged", flagged, now=10.0)) == 1
    for t in range(11, 20):
        assert engine.report("target_flagged", flagged, now=float(t)) == []
    # Another subject of the same kind is its own alert; the first one, absent now, resolves.
    other = [Condition("target_flagged:8", "target 8 was flagged UNREACHABLE in epoch 3", {"target": 8})]
    assert [(n.key, n.event) for n in engine.report("target_flagged", other, now=20.0)] == [
        ("target_flagged:7", "resolved"), ("target_flagged:8", "firing")]
    asyncio.run(deliver(engine))
    assert [(b["key"], b["state"]) for b in receiver.bodies("/hook")] == [
        ("target_flagged:7", "firing"), ("target_flagged:7", "resolved"), ("target_flagged:8", "firing")]


def test_a_short_clear_is_held_and_only_a_lasting_one_resolves(tmp_path):
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("json", "http://127.0.0.1:9/hook"),
                        resolve_after_s=60.0)
    events = []
    for now, holding in [(0, True), (10, False), (20, True), (30, False), (89, False), (91, False)]:
        events += [(now, n.event) for n in engine.report("low_balance", [LOW] if holding else [], now=float(now))]
    assert events == [(0, "firing"), (91, "resolved")]


def test_a_flapping_alert_is_sent_once_as_flapping_then_held(tmp_path):
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("json", "http://127.0.0.1:9/hook"),
                        flap_window_s=100.0, flap_max_fires=2)
    events = []
    for now in range(0, 12):
        holding = now % 2 == 0
        events += [(now, n.event) for n in engine.report("low_balance", [LOW] if holding else [], now=float(now))]
    assert events == [(0, "firing"), (1, "resolved"), (2, "firing"), (3, "resolved"), (4, "flapping")]
    # Held while it keeps firing within the window (last at 10 s); once it has not fired for a whole window,
    # the end of the flapping is sent (it is clear by then), and the next fire is news again.
    assert engine.report("low_balance", [], now=105.0) == []
    assert [n.event for n in engine.report("low_balance", [], now=111.0)] == ["resolved"]
    assert [n.event for n in engine.report("low_balance", [LOW], now=112.0)] == ["firing"]


def test_alert_state_and_undelivered_messages_survive_a_restart(tmp_path, receiver):
    path = tmp_path / "node.sqlite"
    hook = WebhookConfig("json", receiver.url("/hook"))
    store = Store(path)
    engine = engine_for(store, hook, resolve_after_s=30.0)
    assert len(engine.report("low_balance", [LOW], now=100.0)) == 1
    assert engine.report("low_balance", [], now=110.0) == []  # clearing, resolution held
    store.close()  # "crash" before anything was delivered

    store = Store(path)
    engine = engine_for(store, hook, resolve_after_s=30.0)
    assert engine.records()["low_balance"].state == "clearing"
    assert engine.report("low_balance", [LOW], now=120.0) == []  # still the same firing alert: not re-sent
    assert engine.report("low_balance", [], now=121.0) == []
    assert [n.event for n in engine.report("low_balance", [], now=151.0)] == ["resolved"]
    asyncio.run(deliver(engine))
    assert [b["state"] for b in receiver.bodies("/hook")] == ["firing", "resolved"]
    store.close()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM alert_outbox").fetchone()[0] == 0


def test_a_failing_receiver_is_retried_and_a_slow_one_blocks_nobody(tmp_path, receiver):
    receiver.script["/flaky"] = [500, 503, 200]
    receiver.delay["/slow"] = 1.5
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("json", receiver.url("/flaky")),
                        WebhookConfig("json", receiver.url("/slow")), WebhookConfig("json", receiver.url("/fast")),
                        timeout_s=0.3, max_attempts=3)

    async def scenario():
        engine.start()
        try:
            started = time.monotonic()
            engine.report("low_balance", [LOW], now=1.0)
            assert time.monotonic() - started < 0.1  # reporting never waits for a receiver
            await asyncio.to_thread(receiver.wait, "/fast", 1, 1.0)
            assert time.monotonic() - started < 1.0  # not held up by the slow receiver
            await asyncio.to_thread(receiver.wait, "/flaky", 3, 5.0)
            deadline = time.monotonic() + 5
            while engine.pending():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await engine.stop()

    asyncio.run(scenario())
    flaky = receiver.bodies("/flaky")
    assert len(flaky) == 3 and all(b == flaky[0] for b in flaky)  # the same message, retried until accepted
    assert len(receiver.bodies("/fast")) == 1
    assert len(receiver.bodies("/slow")) == 3  # timed out max_attempts times, then dropped


def test_a_rejected_message_is_not_retried(tmp_path, receiver, caplog):
    receiver.script["/gone"] = [404]
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("json", receiver.url("/gone")))
    engine.report("low_balance", [LOW], now=1.0)
    with caplog.at_level(logging.INFO, logger="alignment_node.alerts"):
        asyncio.run(deliver(engine))
    assert len(receiver.bodies("/gone")) == 1
    assert "HTTP 404" in caplog.text and "dropped" in caplog.text


def test_disabled_alerts_are_not_sent_and_severity_follows_the_config(tmp_path, receiver):
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("json", receiver.url("/hook")),
                        disabled=["low_balance"], severity={"target_flagged": "critical"})
    assert engine.report("low_balance", [LOW], now=1.0) == []
    flagged = [Condition("target_flagged:7", "target 7 was flagged FAULT in epoch 3")]
    assert [n.severity for n in engine.report("target_flagged", flagged, now=1.0)] == ["critical"]
    asyncio.run(deliver(engine))
    assert [(b["alert"], b["severity"]) for b in receiver.bodies("/hook")] == [("target_flagged", "critical")]


def test_without_webhooks_the_engine_does_nothing(tmp_path):
    store = Store(tmp_path / "node.sqlite")
    engine = engine_for(store)
    assert not engine.active
    assert engine.report("low_balance", [LOW]) == [] and engine.pending() == 0
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not any(t.startswith("alert") for t in tables)


def test_webhook_urls_never_reach_the_logs(tmp_path, receiver, caplog):
    receiver.script[f"/api/webhooks/{SECRET}"] = [500, 200]
    url = receiver.url(f"/api/webhooks/{SECRET}")
    engine = engine_for(Store(tmp_path / "node.sqlite"), WebhookConfig("discord", url))
    with caplog.at_level(logging.DEBUG):
        engine.report("low_balance", [LOW], now=1.0)

        async def run():
            engine.start()
            other = logging.getLogger("somewhere.else")  # e.g. a library's messages
            other.error("request to %s failed", url)
            other.debug("POST /api/webhooks/%s", SECRET)
            try:
                raise ValueError(f"cannot post to {url}")
            except ValueError:
                other.exception("unexpected")
            await deliver(engine)

        asyncio.run(run())
    assert len(receiver.bodies(f"/api/webhooks/{SECRET}")) == 2
    assert "failed (HTTP 500): retry 1" in caplog.text and "sent to discord webhook 0" in caplog.text
    assert f"http://127.0.0.1:{receiver.httpd.server_address[1]}/..." in caplog.text
    assert "ValueError: cannot post to http://127.0.0.1" in caplog.text and "POST /..." in caplog.text
    assert "s3cr3t" not in caplog.text


# ------------------------------------------------------------------------------------------- config

ALERTS_TOML = """
[operator]
password_env = "PW"
[alerts]
disabled = ["rpc_failover"]
severity = { target_flagged = "warning" }
resolve_after_s = 120
[[alerts.webhooks]]
kind = "discord"
url_env = "DISCORD_WEBHOOK"
[[alerts.webhooks]]
kind = "telegram"
url = "https://api.telegram.org/bot123:ABC"
chat_id = -1001
"""


def test_alerts_config_reads_webhooks_and_takes_urls_from_the_environment(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(ALERTS_TOML)
    cfg = load_config(path, env={"DISCORD_WEBHOOK": "https://discord.com/api/webhooks/1/x",
                                 "ZG_ALIGNMENT_NODE_ALERTS_FLAP_MAX_FIRES": "5"})
    a = cfg.alerts
    assert [(h.kind, h.url, h.chat_id) for h in a.webhooks] == [
        ("discord", "https://discord.com/api/webhooks/1/x", ""), ("telegram", "https://api.telegram.org/bot123:ABC",
                                                                  "-1001")]
    assert a.disabled == ["rpc_failover"] and a.severity == {"target_flagged": "warning"}
    assert a.resolve_after_s == 120 and a.flap_max_fires == 5
    assert load_config(None, env={"PW": "x", "ZG_ALIGNMENT_NODE_OPERATOR_PASSWORD_ENV": "PW"}).alerts.webhooks == []


def test_alerts_config_names_every_problem_without_showing_a_url(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(ALERTS_TOML.replace("chat_id = -1001", "").replace('"warning"', '"loud"')
                    + '[[alerts.webhooks]]\nkind = "teams"\nurl = "ftp://host/s3cr3t"\n'
                    + '[[alerts.webhooks]]\nkind = "json"\nurl = "https://h/x"\nurl_env = "X"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, env={"ZG_ALIGNMENT_NODE_ALERTS_DISABLED": "nope"})
    text = str(err.value)
    for needle in ("alerts.webhooks[0].url_env: environment variable DISCORD_WEBHOOK is not set",
                   "alerts.webhooks[1].chat_id", "alerts.webhooks[2].kind: 'teams'", "alerts.webhooks[2].url",
                   "alerts.webhooks[3]: set exactly one of url or url_env", "alerts.severity.target_flagged: 'loud'",
                   "alerts.disabled: 'nope'"):
        assert needle in text, needle
    assert "s3cr3t" not in text


# --------------------------------------------------------------------------------------- a real node


def test_a_node_on_a_devnet_alerts_a_flagged_target_a_failover_and_low_gas_money(tmp_path, receiver):
    """The node's hooks and chain event reads: one operator's node with a dead first RPC endpoint, a gas-money
    threshold it cannot meet and a target that is down, posting to a JSON webhook."""
    from alignment_node.devnet.anvil import AnvilError, find_anvil, free_port
    from alignment_node.devnet.network import Devnet, Plan
    from alignment_node.keys import load_signer
    from alignment_node.node.node import Node

    try:
        find_anvil()
    except AnvilError as exc:
        pytest.skip(str(exc))
    net = Devnet(Plan(commissions_bps=(1000,), owners=1, licenses_per_owner=3, block_time=0.25, epoch_length=20,
                      reveal_blocks=8, targets=("down",)), tmp_path / "devnet", log=lambda *_: None)
    try:
        asyncio.run(net.setup())
        op = net.operators[0]
        config = tmp_path / "node.toml"
        config.write_text(
            f'data_dir = "data"\n[chain]\nrpc_urls = ["http://127.0.0.1:{free_port()}", "{net.anvil.url}"]\n'
            f'manifest = "{net.workdir / "deployment.json"}"\nrequest_timeout = 2\npoll_interval = 0.2\n'
            f'[operator]\nkeystore = "{op.directory / "keystore"}"\npassword_file = "{op.directory / "password"}"\n'
            f"[service]\nport = 0\n[gas]\nmin_balance_wei = {10**30}\n[audit]\ndeadline_s = 1\n"
            f'[alerts]\nresolve_after_s = 0\n[[alerts.webhooks]]\nkind = "json"\nurl = "{receiver.url("/hook")}"\n')
        cfg = load_config(config, env={})
        signer = load_signer(op.directory / "keystore", (op.directory / "password").read_text().strip())
        node = Node(cfg, signer, net.manifest)
        wanted = {"target_flagged", "rpc_failover", "low_balance"}

        async def run():
            stop = asyncio.Event()
            running = asyncio.create_task(node.run(stop))
            deadline = time.monotonic() + 60
            while not wanted <= {b["alert"] for b in receiver.bodies("/hook")} and time.monotonic() < deadline:
                assert not running.done(), running.exception()
                await asyncio.sleep(0.2)
            stop.set()
            await running

        asyncio.run(run())
    finally:
        net.stop()
    firing = {b["alert"]: b for b in receiver.bodies("/hook") if b["state"] == "firing"}
    assert wanted <= set(firing), receiver.bodies("/hook")
    target = net.targets[0].id
    flagged = firing["target_flagged"]
    assert flagged["key"] == f"target_flagged:{target}" and flagged["severity"] == "info"
    assert flagged["details"]["outcome"] == "UNREACHABLE" and flagged["details"]["evidence_root"].startswith("0x")
    assert firing["low_balance"]["details"]["operator"] == signer.address
    assert firing["rpc_failover"]["node"] == signer.address
    assert len([b for b in receiver.bodies("/hook") if b["alert"] == "low_balance"]) == 1  # deduplicated
