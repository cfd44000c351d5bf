"""The DA audit worker: the process that audits a node's DA_SIGNER targets (the node starts it and talks to it
through pipes: ``audits.da.DaWorkerAuditor``, protocol in ``audits.worker``).

    python -m alignment_node.da.worker

Request fields besides the common ones: ``rpc_urls`` and ``request_timeout`` (the DA signers' chain),
``lookback_blocks`` and ``policy`` (``audits.da.DaPolicy`` as a dict). Per request the worker reads the chain
once (``DaChainReader.refresh``: the current DA epoch and each named DAEntrance's newly verified blobs), then
audits the targets (``audits.da.DaAuditor``: the signer's chain facts, GetStatus, the drawn BatchRetrieves, the
judgement) and writes each bundle as soon as it is judged. The JSON-RPC client and the reader (its window of
verified blobs and its cache of quorums) live as long as the worker, so later epochs read only new blocks.

A target whose identity names a chain the configured endpoints do not serve, or whose audit gave no result
within the deadline, is answered ``skipped`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, AsyncIterator

from ..audits.base import AuditResult, EpochContext, Target
from ..audits.da import DaAuditor, DaPolicy, parse_da_identity
from ..chain.rpc import RpcClient
from ..protocol import KIND_DA_SIGNER
from .chain import DaChainReader

__all__ = ["DaWorker", "main"]

log = logging.getLogger("alignment_node.da.worker")


class DaWorker:
    def __init__(self) -> None:
        self._readers: dict[tuple, tuple[DaChainReader, int]] = {}

    async def reader(self, req: dict[str, Any], policy: DaPolicy) -> tuple[DaChainReader, int]:
        """The reader of the request's chain and that chain's id (made once per endpoint list and settings)."""
        key = (tuple(req["rpc_urls"]), policy.window_blobs, int(req.get("lookback_blocks", 20_000)))
        if key not in self._readers:
            rpc = RpcClient(list(req["rpc_urls"]), timeout=float(req.get("request_timeout", 10)))
            chain_id = await rpc.chain_id()
            self._readers[key] = (DaChainReader(rpc, key[1], key[2]), chain_id)
        return self._readers[key]

    async def handle(self, req: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        policy = DaPolicy(**req.get("policy", {}))
        reader, chain_id = await self.reader(req, policy)
        targets, licenses, entrances = [], {}, set()
        for t in req["targets"]:
            identity = bytes.fromhex(t["identity"].removeprefix("0x"))
            try:
                target_chain, _signer, entrance = parse_da_identity(identity)
            except ValueError as exc:
                yield {"skipped": {"id": t["id"], "reason": str(exc)}}
                continue
            if target_chain != chain_id:
                yield {"skipped": {"id": t["id"], "reason": f"its signer is on chain {target_chain}; "
                                                          f"audit.da_rpc_urls reach chain {chain_id}"}}
                continue
            targets.append(Target(int(t["id"]), KIND_DA_SIGNER, t["endpoint"], identity))
            licenses[int(t["id"])] = [int(t.get("license", 0))]
            entrances.add(entrance)
        if not targets:
            return
        await reader.refresh(sorted(entrances))
        for entrance in sorted(entrances):
            if reader.undecodable(entrance):
                log.warning("DAEntrance %s: %d verified blobs whose bitmap could not be read are left out",
                            entrance, reader.undecodable(entrance))

        done: asyncio.Queue = asyncio.Queue()

        def sink(tid: int, res: AuditResult) -> AuditResult:
            done.put_nowait({"result": {"id": tid, "verdict": res.verdict, "bundle": res.bundle}})
            return AuditResult(res.verdict, {}, stored_root=b"")

        async def chain_facts(_t: Target, _chain_id: int, signer: str, entrance: str):
            return await reader.facts(signer, entrance)

        auditor = DaAuditor(chain_facts, policy)
        context = EpochContext(bytes.fromhex(req["seed"].removeprefix("0x")), licenses, sink)
        task = asyncio.ensure_future(auditor.audit_epoch(int(req["epoch"]), targets, targets,
                                                         float(req["deadline_s"]), context))
        answered: set[int] = set()
        while not (task.done() and done.empty()):
            getter = asyncio.ensure_future(done.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            item = getter.result()
            answered.add(item["result"]["id"])
            yield item
        task.result()  # an error of the audit itself is the request's error
        for t in targets:
            if t.id not in answered:
                yield {"skipped": {"id": t.id, "reason": "no result within the deadline, or its chain facts "
                                                         "could not be read (see the worker's log)"}}


def main() -> int:
    from ..audits.worker import serve

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    worker = DaWorker()

    async def ready() -> None:  # load what the audits need before saying ready
        import grpc.aio  # noqa: F401

        from . import bls

        bls.get_backend()

    return asyncio.run(serve(worker.handle, ready))


if __name__ == "__main__":
    sys.exit(main())
