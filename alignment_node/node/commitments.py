"""The operator's commitment of one epoch (issue 16, step 2): the hash of its listed votes under one secret salt
(``protocol.vote_commitment``, AuditProtocol.commitmentOf). Every stored opening of the epoch (one per license:
targets, verdicts, roots) gives its votes that are not OK (an OK is implicit in the reveal); they are sorted by
(target, license).

The epoch's salt is kept in the store (``salt.<epoch>``) before the first opening of the epoch is stored, and each
opening carries it too. Before a commit transaction is sent, the exact salt and votes its root covers are kept in
the store (``commit.<epoch>``, every root the node tried that epoch), so the reveal after a restart opens the root
the chain holds, even if a later commit with more licenses never got mined."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .. import protocol as P
from .store import Store


def _bytes(hex0x: str) -> bytes:
    return bytes.fromhex(hex0x[2:])


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


@dataclass(frozen=True)
class Attempt:
    """A root the node commits (or committed) for an epoch, with what opens it."""

    root: bytes
    salt: bytes
    votes: tuple[P.Vote, ...]
    licenses: tuple[int, ...]  # the licenses whose openings it covers, increasing

    def to_json(self) -> dict:
        return {"root": _hex(self.root), "salt": _hex(self.salt), "licenses": list(self.licenses),
                "votes": [[lic, t, v, _hex(r)] for lic, t, v, r in self.votes]}

    @classmethod
    def from_json(cls, raw: dict) -> "Attempt":
        return cls(_bytes(raw["root"]), _bytes(raw["salt"]),
                   tuple((lic, t, v, _bytes(r)) for lic, t, v, r in raw["votes"]), tuple(raw["licenses"]))


def epoch_salt(store: Store, epoch: int) -> bytes:
    """The epoch's salt: drawn and stored at the first call (before any opening of the epoch is stored)."""
    key = f"salt.{epoch}"
    raw = store.get(key)
    if raw is None:
        raw = _hex(secrets.token_bytes(32))
        store.put(key, raw)
    return _bytes(raw)


def opening_votes(openings: list[dict]) -> list[P.Vote]:
    """The listed votes of ``openings`` (store rows), sorted by (target, license)."""
    return P.sorted_votes([(o["license"], o["targets"], o["verdicts"], [_bytes(r) for r in o["roots"]])
                           for o in openings])


def attempt_over(epoch: int, operator: str, salt: bytes, openings: list[dict]) -> Attempt:
    """The commitment of ``openings`` under ``salt``."""
    votes = opening_votes(openings)
    return Attempt(P.vote_commitment(epoch, operator, salt, votes), salt, tuple(votes),
                   tuple(sorted(o["license"] for o in openings)))


def epoch_attempt(store: Store, epoch: int, operator: str) -> Attempt:
    """The commitment over every stored opening of ``epoch`` under its salt (what a commit sends)."""
    return attempt_over(epoch, operator, epoch_salt(store, epoch), store.openings(epoch))


def record_attempt(store: Store, epoch: int, attempt: Attempt) -> None:
    """Keep what opens a root about to be committed (before the transaction is signed)."""
    key = f"commit.{epoch}"
    attempts = store.get(key, [])
    entry = attempt.to_json()
    if entry not in attempts:
        store.put(key, attempts + [entry])


def attempt_for_root(store: Store, epoch: int, operator: str, root: bytes) -> Attempt | None:
    """What opens ``root``: one of the recorded attempts, else the epoch's stored openings under the epoch's salt
    or under a salt an opening carries (a store of an older release kept one salt per license and no attempts);
    None when nothing matches."""
    for raw in store.get(f"commit.{epoch}", []):
        if raw.get("root") == _hex(root) and "salt" in raw:
            return Attempt.from_json(raw)
    openings = store.openings(epoch)
    if not openings:
        return None
    salts = ([store.get(f"salt.{epoch}")] if store.get(f"salt.{epoch}") else []) + [o["salt"] for o in openings]
    for salt in dict.fromkeys(salts):
        attempt = attempt_over(epoch, operator, _bytes(salt), openings)
        if attempt.root == root:
            return attempt
    return None
