"""The devnet's 0G DA disperser: keeps blobs arriving at the DAEntrance, signed by their quorum's DA signers, the
way 0g-da-client's batcher does (docs/spec/DA.md sections 5 and 7).

One blob (``Disperser.disperse_one``):

1. a random blob in the devnet row format (``da.rows.make_blob``), one row of ``row_bytes`` (256) per row of a
   quorum (DASigners ``params().encodedSlices``);
2. ``submitOriginalData([root])``; its DataUpload event names the DA epoch and quorum;
3. ``getQuorum(epoch, quorum)`` (one signer address per row; cached for the epoch) and ``getSigner`` of the
   quorum's distinct signers (registered socket, pkG1, pkG2);
4. to every signer, at its registered socket (a signer registered at a wrong socket is not reached), one
   BatchSign of its rows in ascending order with a ``sign_deadline_s`` (2 s) deadline, the reply parsed
   strictly (``da.wire``) and its signature verified against the signer's registered pkG2;
5. the quorum bitmap sets every row of every signer whose signature verified; when those rows are at least
   2/3 of the quorum (``bls.meets_threshold``), the signatures summed in G1 and those signers' pkG2 summed in
   G2 (EVM word order in the submission) pass the pairing check DAEntrance runs (``bls.verify_submission``)
   and go to ``submitVerifiedCommitRoots([submission])``: one plain transaction from the disperser's
   account straight to DAEntrance, so an auditor reads the bitmap from that transaction's input. Below 2/3
   the blob is skipped (logged, nothing sent).

Faults: a signer that is unreachable, slow, answers garbage or signs wrongly is left out of the bitmap (the
reason is in ``Dispersal.left_out``) and changes nothing else; a failed or reverted submission skips that
blob; a failure before any signing (the upload) raises from ``disperse_one`` and is logged by the running loop,
which goes on with the next blob.

Epochs: before every ``epoch_every``-th blob (6) the disperser opens the next DA epoch with ``newEpoch`` and the
current epoch's quorums, so every signer in a quorum stays enrolled and one in none does not. ``newEpoch`` is
the DASigners admin's: the disperser's account must be the admin.

Running: ``start(interval_s)`` disperses one blob every ``interval_s`` seconds in a task of the running event
loop until ``stop()`` / ``await close()`` or the loop's end. The disperser has its own RPC client.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter, deque
from dataclasses import dataclass, field

from ..chain.abi import EventRegistry
from ..chain.artifacts import load_artifact
from ..chain.contracts import Contract
from ..chain.rpc import RpcClient
from ..chain.tx import LocalSigner
from ..da import bls, rows, wire
from ..da.chain import DA_SIGNERS_ADDRESS  # 0G's DASigners precompile
from ..da.chain import DA_SIGNERS_ADDRESS

__all__ = ["ROW_BYTES", "EPOCH_EVERY", "SIGN_DEADLINE_S", "Dispersal", "Disperser"]

log = logging.getLogger("alignment_node.devnet.disperser")

ROW_BYTES = 256
EPOCH_EVERY = 6
SIGN_DEADLINE_S = 2.0
MAX_REPLY_BYTES = 1 << 20  # a BatchSignReply of one request is about 70 bytes
RECENT = 64  # dispersals kept in ``Disperser.recent``


@dataclass
class Dispersal:
    """What became of one blob."""

    data_root: bytes
    epoch: int
    quorum_id: int
    commitment: bls.G1Point
    signed: list[str] = field(default_factory=list)  # signers whose signature verified, in quorum row order
    left_out: dict[str, str] = field(default_factory=dict)  # signer -> why its rows are not in the bitmap
    bitmap: bytes = b""
    hit: int = 0  # rows counted
    total: int = 0  # rows of the quorum
    tx_hash: str | None = None  # of the submitVerifiedCommitRoots transaction
    verified: bool = False  # ErasureCommitmentVerified was emitted for it
    skipped: str | None = None  # why it was not verified


class _LeftOut(Exception):
    """A signer's rows stay out of the bitmap, for this reason."""


class Disperser:
    """Disperses blobs to the DAEntrance at ``entrance`` from ``account`` (the DASigners admin)."""

    def __init__(self, rpc_url: str, entrance: str, account: LocalSigner, *, signers: str = DA_SIGNERS_ADDRESS,
                 row_bytes: int = ROW_BYTES, epoch_every: int = EPOCH_EVERY, sign_deadline_s: float = SIGN_DEADLINE_S):
        if epoch_every < 1 or row_bytes < 1 or sign_deadline_s <= 0:
            raise ValueError("epoch_every and row_bytes must be at least 1, sign_deadline_s positive")
        self.rpc = RpcClient(rpc_url)
        self.signers = Contract(self.rpc, signers, load_artifact("DevnetDASigners").contract_abi, "DASigners")
        self.entrance = Contract(self.rpc, entrance, load_artifact("DevnetDAEntrance").contract_abi, "DAEntrance")
        self.account = account
        self.row_bytes, self.epoch_every, self.sign_deadline_s = row_bytes, epoch_every, sign_deadline_s
        self.counts: Counter[str] = Counter()  # "verified", "skipped", "failed" (raised), "epochs" (opened)
        self.recent: deque[Dispersal] = deque(maxlen=RECENT)
        self._events = EventRegistry()
        self._events.add_abi(self.entrance.abi.raw)
        self._quorums: dict[tuple[int, int], list[str]] = {}
        self._blobs_in_epoch = 0
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------------------------ epochs

    async def new_epoch(self) -> int:
        """Open the next DA epoch with the current epoch's quorums; the new epoch's number."""
        epoch = await self.signers.call("epochNumber")
        count = await self.signers.call("quorumCount", epoch)
        if count == 0:
            raise ValueError(f"DA epoch {epoch} has no quorums to carry over")
        quorums = [list(await self.signers.call("getQuorum", epoch, q)) for q in range(count)]
        await self.signers.transact("newEpoch", quorums, signer=self.account)
        self._quorums.clear()
        self._blobs_in_epoch = 0
        self.counts["epochs"] += 1
        log.info("opened DA epoch %d with %d quorums", epoch + 1, count)
        return epoch + 1

    async def _quorum(self, epoch: int, quorum_id: int) -> list[str]:
        key = (epoch, quorum_id)
        if key not in self._quorums:
            self._quorums[key] = [a.lower() for a in await self.signers.call("getQuorum", epoch, quorum_id)]
        return self._quorums[key]

    # ------------------------------------------------------------------------------------------ one blob

    async def disperse_one(self) -> Dispersal:
        """Upload one blob, gather its signatures and submit them (see the module doc), first opening a new DA
        epoch when one is due. Raises when the epoch could not be opened or the blob not uploaded; every later
        failure is recorded in the Dispersal it returns."""
        try:
            if self._blobs_in_epoch >= self.epoch_every:
                await self.new_epoch()
            d = await self._disperse()
        except Exception:
            self.counts["failed"] += 1
            raise
        self.counts["verified" if d.verified else "skipped"] += 1
        self.recent.append(d)
        if d.verified:
            log.info("blob 0x%s verified in DA epoch %d quorum %d: %d of %d rows (%s left out)", d.data_root.hex(),
                     d.epoch, d.quorum_id, d.hit, d.total, ", ".join(d.left_out) or "none")
        else:
            log.warning("blob 0x%s of DA epoch %d quorum %d not verified: %s", d.data_root.hex(), d.epoch,
                        d.quorum_id, d.skipped)
        return d

    async def _disperse(self) -> Dispersal:
        n_rows = (await self.signers.call("params"))[4]  # encodedSlices: rows of a quorum
        blob = rows.make_blob(secrets.token_bytes(32), n_rows, self.row_bytes)
        receipt = await self.entrance.transact("submitOriginalData", [blob.storage_root], signer=self.account)
        self._blobs_in_epoch += 1
        upload = self._event(receipt, "DataUpload")
        if upload is None or upload["dataRoot"] != blob.storage_root:
            raise ValueError(f"submitOriginalData: no DataUpload of 0x{blob.storage_root.hex()} in the receipt")
        epoch, quorum_id = upload["epoch"], upload["quorumId"]
        d = Dispersal(blob.storage_root, epoch, quorum_id, blob.commitment)
        quorum = await self._quorum(epoch, quorum_id)
        d.total = len(quorum)
        if len(quorum) != n_rows:
            d.skipped = f"quorum {quorum_id} of DA epoch {epoch} has {len(quorum)} rows, the blob {n_rows}"
            return d
        distinct = list(dict.fromkeys(quorum))
        details = await self.signers.call("getSigner", distinct)
        msg = bls.commit_root_hash(blob.storage_root, epoch, quorum_id, blob.commitment)
        outcomes = await asyncio.gather(*(
            self._signature(detail, blob, epoch, quorum_id, [i for i, a in enumerate(quorum) if a == signer], msg)
            for signer, detail in zip(distinct, details)))
        sigs, pk_g1, pk_g2 = {}, {}, {}
        for signer, outcome in zip(distinct, outcomes):
            if isinstance(outcome, str):
                d.left_out[signer] = outcome
            else:
                sigs[signer], pk_g1[signer], pk_g2[signer] = outcome
        d.signed = list(sigs)
        keys = [bytes.fromhex(a[2:]) for a in quorum]
        d.bitmap = bls.bitmap_for_rows(keys, (bytes.fromhex(a[2:]) for a in sigs))
        agg = bls.aggregate_quorum(keys, d.bitmap, {bytes.fromhex(a[2:]): pk for a, pk in pk_g1.items()})
        d.hit = agg.hit
        if not bls.meets_threshold(agg.total, agg.hit):
            d.skipped = f"{agg.hit} of {agg.total} rows signed, below 2/3"
            return d
        signature = bls.g1_sum(sigs.values())
        agg_pk_g2 = bls.g2_sum(pk_g2.values())
        if not bls.verify_submission(blob.storage_root, epoch, quorum_id, blob.commitment, agg.agg_pk_g1,
                                     agg_pk_g2, signature):
            d.skipped = "the aggregate signature fails DAEntrance's pairing check"
            return d
        submission = (blob.storage_root, epoch, quorum_id, blob.commitment, d.bitmap,
                      bls.g2_to_words(agg_pk_g2, "evm"), signature)
        try:
            receipt = await self.entrance.transact("submitVerifiedCommitRoots", [submission], signer=self.account)
        except Exception as exc:  # a revert, a dropped transaction, an unavailable chain: this blob only
            d.skipped = f"submission failed: {_describe(exc)}"
            d.tx_hash = getattr(exc, "tx_hash", None)
            return d
        d.tx_hash = receipt["transactionHash"]
        d.verified = self._event(receipt, "ErasureCommitmentVerified") is not None
        if not d.verified:
            d.skipped = "the submission was mined without ErasureCommitmentVerified (verified before?)"
        return d

    async def _signature(self, detail: tuple, blob: rows.Blob, epoch: int, quorum_id: int, my_rows: list[int],
                         msg: bls.G1Point) -> tuple[bls.G1Point, bls.G1Point, bls.G2Point] | str:
        """(signature, pkG1, pkG2) of one signer for the blob, or why it is left out."""
        _address, socket, g1, (x, y) = detail
        try:
            pk_g1 = bls.check_g1(tuple(g1), "pkG1")
            pk_g2 = bls.g2_from_words(x, y, "chain", "pkG2")
            item = wire.SignItem(epoch, quorum_id, blob.storage_root, blob.commitment,
                                 [blob.slices[i] for i in my_rows])
            raw = await asyncio.wait_for(self._batch_sign(socket, wire.build_batch_sign_request([item])),
                                         self.sign_deadline_s + 1)
            (sig,) = wire.parse_batch_sign_reply(raw, 1)
            if not bls.verify_signature(sig, msg, pk_g2):
                raise _LeftOut("the signature does not verify against the registered pkG2")
            return sig, pk_g1, pk_g2
        except _LeftOut as exc:
            return str(exc)
        except Exception as exc:  # grpc statuses, DaError of a bad reply or key, deadlines: never fatal
            return _describe(exc)

    async def _batch_sign(self, socket: str, request: bytes) -> bytes:
        import grpc.aio

        async with grpc.aio.insecure_channel(socket, options=[("grpc.max_receive_message_length", MAX_REPLY_BYTES),
                                                              ("grpc.enable_retries", 0)]) as channel:
            return await channel.unary_unary(wire.METHOD_BATCH_SIGN)(request, timeout=self.sign_deadline_s)

    def _event(self, receipt: dict, name: str):
        for entry in receipt.get("logs", ()):
            if entry.get("address", "").lower() != self.entrance.address.lower():
                continue
            decoded = self._events.decode(entry)
            if decoded is not None and decoded.name == name:
                return decoded
        return None

    # ------------------------------------------------------------------------------------------ running

    def start(self, interval_s: float) -> None:
        """Disperse one blob every ``interval_s`` seconds in a task of the running loop."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if self._task is not None and not self._task.done():
            raise RuntimeError("the disperser is already running")
        self._task = asyncio.get_running_loop().create_task(self.run(interval_s), name="da-disperser")

    async def run(self, interval_s: float) -> None:
        """One blob every ``interval_s`` seconds until cancelled; a blob that fails is logged and skipped."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    await self.disperse_one()
                except Exception as exc:
                    log.warning("blob not dispersed: %s", _describe(exc))
                await asyncio.sleep(max(0.0, interval_s - (loop.time() - started)))
        finally:
            await self.rpc.close()

    def stop(self) -> None:
        """Cancel the running task, if any (nothing to do once its loop has ended)."""
        task, self._task = self._task, None
        if task is not None and not task.done() and not task.get_loop().is_closed():
            task.cancel()

    async def close(self) -> None:
        """Stop the running task and wait for it; close the RPC client's connections."""
        task = self._task
        self.stop()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        await self.rpc.close()


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):  # a grpc status
        details = exc.details() if hasattr(exc, "details") else ""
        return f"{code().name}: {details}"[:200]
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer before the deadline"
    return f"{type(exc).__name__}: {exc}"[:200]
