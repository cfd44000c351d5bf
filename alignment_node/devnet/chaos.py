"""The ``chaos`` scenario's drills (issue 18): what real networks do to a node, at random points, seeded.

- **kills**: a random operator's node is SIGKILLed and restarted 0.1-0.6 s later (never the same node twice
  within ``KILL_COOLDOWN_S``);
- **reorgs**: the chain's last 1-3 blocks are replaced by empty ones (``anvil_reorg``); what they held goes back
  to the pool in half of them (as a real node's pool does) and is lost in the other half;
- **fee spikes**: the next block's base fee jumps to ``FEE_SPIKE_WEI`` (5 times the fee cap the devnet's nodes
  sign with at a calm base fee) and decays from there by an eighth a block (EIP-1559), stranding transactions
  signed below it until their senders bump them;
- **flapping endpoint**: every node's first RPC endpoint is a fault proxy (``FaultProxyThread``) whose fault
  changes every few seconds (lagging, halted, wrong chain, garbage, slow, down, honest); the second is anvil.

``journal_counts`` reads what a node's journal says it went through (replacements, transactions a reorg
dropped); the report's other counts come from the chain.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from .faultproxy import FaultProxy
from .processes import kill_node

KILL_EVERY_S = (1.0, 3.0)
KILL_COOLDOWN_S = 10.0  # a node restarts in 1-3 s (imports, store check, journal recovery): it gets a life
RESTART_AFTER_S = (0.1, 0.6)
REORG_EVERY_S = (6.0, 12.0)
FEE_SPIKE_EVERY_S = (8.0, 15.0)
FEE_SPIKE_WEI = 10 * 10**9
FLAP_EVERY_S = (2.0, 5.0)
FLAPS = ("lagging", "honest", "garbage", "wrong-chain", "slow", "halted", "down", "honest")


class FaultProxyThread:
    """A FaultProxy on a loopback port, served by an event loop in a thread; ``set`` changes its fault at once.
    "down" is a proxy that drops every request (``flaky`` with no end): the listening socket stays."""

    def __init__(self, upstream: str, port: int):
        self.proxy = FaultProxy(upstream, "honest")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self.proxy.serve("127.0.0.1", port), self.loop).result(10)

    def set(self, mode: str, k: int | None = None, delay: float = 0.0) -> None:
        p = self.proxy
        if mode == "down":
            p.k, p.mode = 10**9, "flaky"
            return
        p.k = k if k is not None else 5
        p.delay = delay
        if mode == "halted":
            p.height = asyncio.run_coroutine_threadsafe(p.rpc.block_number(), self.loop).result(10)
        p.mode = mode

    def stop(self) -> None:
        async def close():
            self.server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in handlers:
                t.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self.proxy.rpc.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class ChaosDrills:
    """The drills of one run, drawn from ``seed``; ``tick`` performs those that are due."""

    seed: int
    proxy: FaultProxyThread | None = None
    kills: int = 0
    reorgs: int = 0
    fee_spikes: int = 0
    flaps: int = 0
    log: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        now = time.monotonic()
        self._next = {"kill": now + self.rng.uniform(*KILL_EVERY_S), "reorg": now + self.rng.uniform(*REORG_EVERY_S),
                      "spike": now + self.rng.uniform(*FEE_SPIKE_EVERY_S), "flap": now + self.rng.uniform(*FLAP_EVERY_S)}
        self._killed_at: dict[str, float] = {}

    async def tick(self, net, rpc) -> None:
        """Perform the drills that are due (a killed node is restarted before this returns)."""
        now = time.monotonic()
        if now >= self._next["kill"]:
            self._next["kill"] = now + self.rng.uniform(*KILL_EVERY_S)
            ready = [op for op in net.operators if now - self._killed_at.get(op.address, -1e9) >= KILL_COOLDOWN_S
                     and op.process is not None and op.process.poll() is None]
            if ready:
                op = self.rng.choice(ready)
                kill_node(op)
                self._killed_at[op.address] = now
                self.kills += 1
                await asyncio.sleep(self.rng.uniform(*RESTART_AFTER_S))
                net.start_node(op)
        if now >= self._next["reorg"]:
            self._next["reorg"] = now + self.rng.uniform(*REORG_EVERY_S)
            depth = self.rng.randint(1, 3)
            head = await rpc.block_number()
            raws = []  # what the dropped blocks held, as a real node's pool keeps it
            for number in range(max(1, head - depth + 1), head + 1):
                block = await rpc.get_block(number, True)
                for tx in (block or {}).get("transactions", []):
                    raws.append(await rpc.request("eth_getRawTransactionByHash", [tx["hash"]]))
            await rpc.request("anvil_reorg", [depth, []])
            # Half of the reorgs give the dropped transactions back to the pool (as geth's does); the other half
            # lose them (a pool that evicted them): their senders must notice and send again.
            reinjected = self.rng.random() < 0.5
            for raw in raws if reinjected else ():
                try:
                    await rpc.request("eth_sendRawTransaction", [raw])
                except Exception:  # noqa: BLE001 (already mined again, or replaced: nothing to give back)
                    pass
            self.reorgs += 1
            self.log.append({"drill": "reorg", "depth": depth, "block": head, "dropped_txs": len(raws),
                             "reinjected": reinjected})
        if now >= self._next["spike"]:
            self._next["spike"] = now + self.rng.uniform(*FEE_SPIKE_EVERY_S)
            block = await rpc.get_block("latest")
            base = max(int(block.get("baseFeePerGas", "0x0"), 16) * 5, FEE_SPIKE_WEI)
            await rpc.request("anvil_setNextBlockBaseFeePerGas", [hex(base)])
            self.fee_spikes += 1
            self.log.append({"drill": "fee-spike", "base_fee": base, "block": int(block["number"], 16)})
        if self.proxy is not None and now >= self._next["flap"]:
            self._next["flap"] = now + self.rng.uniform(*FLAP_EVERY_S)
            mode = self.rng.choice(FLAPS)
            await asyncio.to_thread(self.proxy.set, mode, 20, 3.0)
            self.flaps += 1

    def summary(self) -> dict:
        return {"seed": self.seed, "kills": self.kills, "reorgs": self.reorgs, "fee_spikes": self.fee_spikes,
                "endpoint_flaps": self.flaps}


def journal_counts(op) -> dict:
    """What the node's journal says it went through: fee replacements (rows that replace another), transactions
    a reorg dropped, and the reasons it gave for the reveals it missed (epoch: reason, so a failed run says why)."""
    db = op.directory / "data" / "node.sqlite"
    out: dict = {"replacements": 0, "reorged_txs": 0, "missed_reveal_reasons": {}}
    if not db.exists():
        return out
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for meta, error in con.execute("SELECT meta, error FROM tx_journal"):
            if meta and "replaces" in (json.loads(meta) or {}):
                out["replacements"] += 1
            if error and "dropped by a reorg" in error:
                out["reorged_txs"] += 1
        for epoch, reason in con.execute("SELECT epoch, reason FROM openings WHERE state = 'missed' ORDER BY epoch"):
            out["missed_reveal_reasons"].setdefault(str(epoch), reason)
    except sqlite3.OperationalError:
        pass
    finally:
        con.close()
    return out
