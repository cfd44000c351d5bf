"""Alerts: conditions in, webhook deliveries out (Discord, Slack, Telegram, generic JSON).

The node reports, for each kind of alert, the complete set of conditions that hold right now
(``AlertEngine.report(kind, conditions)``); a key of that kind missing from the set is clear. Per key the
engine keeps a small state machine (``step``) and queues a notification only on news:

- a key that starts to hold is sent as *firing*; while it keeps holding nothing more is sent (dedup);
- a key that stops holding is *clearing*; only after ``resolve_after_s`` seconds clear is the *resolved*
  message sent, and if it holds again before that nothing is sent at all (a short gap is not news);
- a key that fired more than ``flap_max_fires`` times within ``flap_window_s`` is *flapping*: sent once as
  such, then silent until it has not fired for a whole window (a final *resolved* if it is clear by then).

Alert state and the queue of undelivered notifications live in two tables of the node's SQLite store
(``alert_state``, ``alert_outbox``), so a restart neither repeats nor forgets a message. One asyncio task per
webhook delivers its queue in order: an HTTP POST in a worker thread bounded by ``timeout_s``; a failure is
retried with doubling backoff (or the receiver's Retry-After) up to ``max_attempts``, a 4xx other than 408 and
429 is dropped at once. Nothing here blocks or raises into the node. Webhook URLs carry tokens: logs show only
scheme://host, and ``UrlGuard`` scrubs the full URLs from every log record while the engine runs. Without
webhooks the engine does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import html
import http.client
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlsplit

from ..config import DEFAULT_SEVERITY
from ..logs import redact_url

if TYPE_CHECKING:
    from ..config import AlertsConfig, WebhookConfig
    from .store import Store

log = logging.getLogger("alignment_node.alerts")

TITLES = {
    "license_penalized": "License penalized",
    "license_suspended": "License suspended",
    "missed_reveal": "Missed reveal",
    "low_balance": "Low gas balance",
    "rpc_failover": "RPC failover",
    "target_flagged": "Target flagged",
    "node_outdated": "Node release below the minimum",
    "fee_cap_reached": "Transaction stuck at the fee cap",
}
RETRY_BASE_S = 2.0  # first retry after this, doubling per attempt
RETRY_MAX_S = 600.0
OUTBOX_MAX_PER_WEBHOOK = 500  # beyond this the oldest undelivered notifications are dropped

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY,
    webhook TEXT NOT NULL,
    notification TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_outbox_webhook ON alert_outbox(webhook, id);
"""


# ----------------------------------------------------------------------------------- the state machine


@dataclass(frozen=True)
class Condition:
    """One thing that holds now: ``key`` names it (``kind`` or ``kind:subject``), ``details`` are short values."""

    key: str
    summary: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FlapPolicy:
    resolve_after_s: float
    window_s: float
    max_fires: int


@dataclass(frozen=True)
class AlertRecord:
    """The durable state of one alert key. ``state``: firing, clearing (clear, resolve held) or resolved;
    ``fires``: when it started firing within the flap window (seconds since the epoch)."""

    key: str
    state: str
    summary: str
    details: dict
    since: float
    clear_since: float | None = None
    fires: tuple[float, ...] = ()
    flapping: bool = False


def step(rec: AlertRecord | None, cond: Condition | None, now: float,
         policy: FlapPolicy) -> tuple[AlertRecord | None, str | None]:
    """Advance one key given whether its condition holds (``cond``) at ``now``: (its new record, or None to
    forget it; what to send: "firing", "flapping", "resolved" or None)."""
    recent = tuple(t for t in (rec.fires if rec else ()) if now - t < policy.window_s)
    if cond is not None:
        if rec is None or rec.state == "resolved":
            fires = recent + (now,)
            was_flapping = rec is not None and rec.flapping
            flapping = was_flapping or len(fires) > policy.max_fires
            new = AlertRecord(cond.key, "firing", cond.summary, cond.details, now, None, fires, flapping)
            if flapping:
                return new, None if was_flapping else "flapping"
            return new, "firing"
        # Still holding (or holding again within the resolve hold): refresh what it says, send nothing.
        return dataclasses.replace(rec, state="firing", clear_since=None, summary=cond.summary,
                                   details=cond.details, fires=recent, flapping=rec.flapping and bool(recent)), None
    if rec is None:
        return None, None
    if rec.state == "firing":
        rec = dataclasses.replace(rec, state="clearing", clear_since=now)
    if rec.state == "clearing":
        if now - rec.clear_since < policy.resolve_after_s:
            return rec, None
        resolved = dataclasses.replace(rec, state="resolved", since=now, clear_since=None, fires=recent)
        return resolved, None if rec.flapping else "resolved"
    if rec.flapping and not recent:
        return dataclasses.replace(rec, flapping=False, fires=()), "resolved"  # it stopped flapping, clear
    if not recent and not rec.flapping:
        return None, None  # resolved and out of the flap window: nothing left to remember
    return dataclasses.replace(rec, fires=recent), None


# ------------------------------------------------------------------------------------------ messages


@dataclass(frozen=True)
class Notification:
    """What one webhook message says; ``event`` is firing, flapping or resolved, ``time`` seconds since 1970."""

    key: str
    kind: str
    severity: str
    event: str
    summary: str
    details: dict
    node: str
    time: float

    @property
    def state(self) -> str:
        return "resolved" if self.event == "resolved" else "firing"

    @property
    def headline(self) -> str:
        return f"{self.event.upper()}: {TITLES[self.kind]} ({self.severity})"

    @property
    def iso_time(self) -> str:
        return datetime.fromtimestamp(self.time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def detail_lines(self) -> list[tuple[str, str]]:
        return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in self.details.items()]


COLORS = {"resolved": 0x2E7D32, "critical": 0xC62828, "warning": 0xEF6C00, "info": 0x1565C0}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def discord_payload(n: Notification) -> dict:
    """Discord's execute-webhook body: a one-line content plus an embed (limits: content 2000, 25 fields)."""
    color = COLORS["resolved"] if n.state == "resolved" else COLORS[n.severity]
    return {
        "content": _clip(f"{n.headline}: {n.summary}", 2000),
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": _clip(n.headline, 256),
            "description": _clip(n.summary, 4096),
            "color": color,
            "fields": [{"name": _clip(k, 256), "value": _clip(v, 1024) or "-", "inline": True}
                       for k, v in n.detail_lines()[:25]],
            "footer": {"text": _clip(f"{n.node} · {n.key}", 2048)},
            "timestamp": n.iso_time,
        }],
    }


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notification) -> dict:
    """Slack's incoming-webhook body: ``text`` (the notification fallback) and Block Kit blocks."""
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(n.headline, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_mrkdwn(n.summary), 3000)}},
    ]
    lines = n.detail_lines()[:10]
    if lines:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _clip(f"*{_mrkdwn(k)}*\n{_mrkdwn(v)}", 2000)} for k, v in lines]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": _clip(_mrkdwn(f"{n.node} · {n.key} · {n.iso_time}"), 3000)}]})
    return {"text": _clip(f"{n.headline}: {n.summary}", 3000), "blocks": blocks}


def telegram_payload(n: Notification, chat_id: str) -> dict:
    """The Bot API's sendMessage body, HTML formatted (text limit 4096)."""
    lines = [f"<b>{html.escape(n.headline)}</b>", html.escape(n.summary), ""]
    lines += [f"{html.escape(k)}: <code>{html.escape(v)}</code>" for k, v in n.detail_lines()]
    lines.append(f"<i>{html.escape(n.node)} · {html.escape(n.iso_time)}</i>")
    return {"chat_id": chat_id, "text": _clip("\n".join(lines), 4096), "parse_mode": "HTML",
            "disable_web_page_preview": True}


def json_payload(n: Notification) -> dict:
    """The generic JSON body: alert, key, severity, state (firing|resolved), flapping, summary, details, node,
    time (ISO 8601, UTC)."""
    return {"alert": n.kind, "key": n.key, "severity": n.severity, "state": n.state,
            "flapping": n.event == "flapping", "summary": n.summary, "details": n.details, "node": n.node,
            "time": n.iso_time}


class Webhook:
    """One configured receiver: where to POST and in which format."""

    def __init__(self, index: int, cfg: WebhookConfig):
        self.kind = cfg.kind
        self.url = cfg.url.rstrip("/") + "/sendMessage" if cfg.kind == "telegram" else cfg.url
        self.chat_id = cfg.chat_id
        self.id = hashlib.sha256(f"{cfg.kind} {cfg.url} {cfg.chat_id}".encode()).hexdigest()[:16]
        self.label = f"{cfg.kind} webhook {index} ({redact_url(cfg.url)})"

    def body(self, n: Notification) -> bytes:
        if self.kind == "discord":
            payload = discord_payload(n)
        elif self.kind == "slack":
            payload = slack_payload(n)
        elif self.kind == "telegram":
            payload = telegram_payload(n, self.chat_id)
        else:
            payload = json_payload(n)
        return json.dumps(payload, ensure_ascii=False).encode()


def post_json(url: str, body: bytes, timeout: float) -> tuple[int, float | None]:
    """POST ``body`` as JSON (blocking; run it in a thread): (HTTP status, Retry-After seconds or None).
    Raises OSError or http.client.HTTPException when no answer came."""
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = connection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", target, body, {"Content-Type": "application/json", "User-Agent": "alignment-node"})
        resp = conn.getresponse()
        try:
            retry_after = float(resp.getheader("Retry-After") or "")
        except ValueError:
            retry_after = None
        return resp.status, retry_after
    finally:
        conn.close()


class UrlGuard(logging.Filter):
    """Replaces secret URLs, and their paths alone (``/bot<token>/sendMessage``), wherever they appear in a log
    record's message or traceback, by their redacted form."""

    def __init__(self, urls: Iterable[str]):
        super().__init__()
        pairs = {}
        for url in filter(None, urls):
            pairs[url] = redact_url(url)
            path = urlsplit(url).path
            if len(path) > 1:
                pairs[path] = "/..."
        # Longest first, so a URL is replaced whole before its path alone.
        self.pairs = sorted(pairs.items(), key=lambda p: len(p[0]), reverse=True)

    def scrub(self, text: str) -> str:
        for secret, shown in self.pairs:
            text = text.replace(secret, shown)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
        return True


# -------------------------------------------------------------------------------------------- engine


class AlertEngine:
    """The alert state machine over the node's store, and its webhook senders (``start``/``stop``)."""

    def __init__(self, cfg: AlertsConfig, store: Store, node_name: str, retry_base_s: float = RETRY_BASE_S):
        self.cfg = cfg
        self.store = store
        self.node_name = node_name
        self.retry_base_s = retry_base_s
        self.policy = FlapPolicy(cfg.resolve_after_s, cfg.flap_window_s, cfg.flap_max_fires)
        self.webhooks = [Webhook(i, h) for i, h in enumerate(cfg.webhooks)]
        self._guard = UrlGuard([h.url for h in cfg.webhooks] + [w.url for w in self.webhooks])
        self._records: dict[str, AlertRecord] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task] = []
        if not self.active:
            return
        store.db.executescript(SCHEMA)
        ids = [w.id for w in self.webhooks]
        store.db.execute(f"DELETE FROM alert_outbox WHERE webhook NOT IN ({','.join('?' * len(ids))})", ids)
        for row in store.db.execute("SELECT kind, record FROM alert_state").fetchall():
            if self.enabled(row["kind"]):
                rec = json.loads(row["record"])
                rec["fires"] = tuple(rec["fires"])
                self._records[rec["key"]] = AlertRecord(**rec)

    @property
    def active(self) -> bool:
        """Whether there is anywhere to send alerts (without webhooks the engine does nothing)."""
        return bool(self.webhooks)

    def enabled(self, kind: str) -> bool:
        return self.active and kind in DEFAULT_SEVERITY and kind not in self.cfg.disabled

    def records(self) -> dict[str, AlertRecord]:
        """The current state of every alert key the engine remembers."""
        return dict(self._records)

    # ------------------------------------------------------------------------------ conditions in

    def report(self, kind: str, conditions: Iterable[Condition], now: float | None = None) -> list[Notification]:
        """The complete set of ``kind`` conditions holding at ``now``; queues and returns what is news."""
        if kind not in DEFAULT_SEVERITY:
            raise ValueError(f"unknown alert kind {kind!r} (known: {', '.join(DEFAULT_SEVERITY)})")
        if not self.enabled(kind):
            return []
        now = time.time() if now is None else now
        holding = {c.key: c for c in conditions}
        for key in holding:
            if key.split(":", 1)[0] != kind:
                raise ValueError(f"alert key {key!r} is not of kind {kind!r} (keys are kind or kind:subject)")
        keys = set(holding) | {k for k in self._records if k.split(":", 1)[0] == kind}
        sent: list[Notification] = []
        changes: list[tuple[str, AlertRecord | None]] = []
        for key in sorted(keys):
            old = self._records.get(key)
            new, event = step(old, holding.get(key), now, self.policy)
            if new != old:
                changes.append((key, new))
            if event is not None:
                shown = new or old
                sent.append(Notification(key, kind, self.cfg.severity.get(kind, DEFAULT_SEVERITY[kind]), event,
                                         shown.summary, shown.details, self.node_name, now))
        if changes or sent:
            self._persist(kind, changes, sent, now)
        for n in sent:
            log.log(logging.WARNING if n.state == "firing" else logging.INFO, "alert %s %s: %s",
                    n.key, n.event, n.summary)
        return sent

    def _persist(self, kind: str, changes: list[tuple[str, AlertRecord | None]], sent: list[Notification],
                 now: float) -> None:
        db = self.store.db
        with self.store.transaction():
            for key, rec in changes:
                if rec is None:
                    db.execute("DELETE FROM alert_state WHERE key = ?", (key,))
                    continue
                db.execute("INSERT INTO alert_state (key, kind, record, updated) VALUES (?, ?, ?, ?)"
                           " ON CONFLICT(key) DO UPDATE SET record = excluded.record, updated = excluded.updated",
                           (key, kind, json.dumps(dataclasses.asdict(rec), sort_keys=True), now))
            for n in sent:
                body = json.dumps(dataclasses.asdict(n), sort_keys=True)
                for hook in self.webhooks:
                    db.execute("INSERT INTO alert_outbox (webhook, notification, next_at, created)"
                               " VALUES (?, ?, ?, ?)", (hook.id, body, 0.0, time.time()))
                    db.execute("DELETE FROM alert_outbox WHERE webhook = ? AND id NOT IN (SELECT id FROM"
                               " alert_outbox WHERE webhook = ? ORDER BY id DESC LIMIT ?)",
                               (hook.id, hook.id, OUTBOX_MAX_PER_WEBHOOK))
        for key, rec in changes:
            if rec is None:
                self._records.pop(key, None)
            else:
                self._records[key] = rec
        if sent:
            for event in self._wake.values():
                event.set()

    # ---------------------------------------------------------------------------- deliveries out

    def pending(self) -> int:
        """Notifications not yet delivered (over all webhooks)."""
        if not self.active:
            return 0
        return self.store.db.execute("SELECT COUNT(*) FROM alert_outbox").fetchone()[0]

    def start(self) -> None:
        """Start one delivery task per webhook (on the running loop) and the log guard."""
        if not self.active or self._tasks:
            return
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._guard)
        for hook in self.webhooks:
            self._wake[hook.id] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._deliver(hook), name=f"alerts {hook.kind}"))

    async def stop(self) -> None:
        """Stop the delivery tasks; undelivered notifications stay queued for the next start."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._wake.clear()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._guard)

    async def _deliver(self, hook: Webhook) -> None:
        wake = self._wake[hook.id]
        while True:
            try:
                row = self.store.db.execute("SELECT id, notification, attempts, next_at FROM alert_outbox"
                                            " WHERE webhook = ? ORDER BY id LIMIT 1", (hook.id,)).fetchone()
                wait = None if row is None else row["next_at"] - time.time()
                if wait is None or wait > 0:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                    continue
                await self._attempt(hook, row)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must never stop the node; try again a little later
                log.exception("alert delivery to %s failed unexpectedly", hook.label)
                await asyncio.sleep(self.retry_base_s)

    async def _attempt(self, hook: Webhook, row) -> None:
        n = Notification(**json.loads(row["notification"]))
        retry_after = None
        try:
            status, retry_after = await asyncio.wait_for(
                asyncio.to_thread(post_json, hook.url, hook.body(n), self.cfg.timeout_s), 2 * self.cfg.timeout_s)
            error = None if 200 <= status < 300 else f"HTTP {status}"
            permanent = 400 <= status < 500 and status not in (408, 429)
        except Exception as exc:  # no answer (refused, timed out, TLS, a malformed reply): try again later
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            permanent = False
        db = self.store.db
        if error is None:
            db.execute("DELETE FROM alert_outbox WHERE id = ?", (row["id"],))
            log.info("alert %s %s sent to %s", n.key, n.event, hook.label)
            return
        attempts = row["attempts"] + 1
        if permanent or attempts >= self.cfg.max_attempts:
            db.execute("DELETE FROM alert_outbox WHERE id = ?", (row["id"],))
            log.error("alert %s %s not delivered to %s after %d attempt(s), dropped: %s", n.key, n.event,
                      hook.label, attempts, error)
            return
        delay = min(RETRY_MAX_S, max(retry_after or 0.0, self.retry_base_s * 2 ** (attempts - 1)))
        db.execute("UPDATE alert_outbox SET attempts = ?, next_at = ? WHERE id = ?",
                   (attempts, time.time() + delay, row["id"]))
        log.warning("alert %s %s to %s failed (%s): retry %d in %.1fs", n.key, n.event, hook.label, error,
                    attempts, delay)
