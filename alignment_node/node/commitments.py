"""The operator's commitment tree of one epoch (issue 16): one leaf per stored opening, in license order, so the
tree is a pure function of the openings in the store; the commit sends its root and each reveal its proof.

Before a commit transaction is sent, the set of licenses its root covers is kept in the store (``commit.<epoch>``,
every root the node tried that epoch), so the reveal after a restart rebuilds exactly the tree whose root the chain
holds, even if a later commit with more licenses never got mined."""

from __future__ import annotations

from dataclasses import dataclass

from .. import protocol as P
from .store import Store


def _bytes(hex0x: str) -> bytes:
    return bytes.fromhex(hex0x[2:])


@dataclass(frozen=True)
class CommitTree:
    licenses: tuple[int, ...]  # leaf order: increasing license ids
    layers: list[list[bytes]]

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, license_id: int) -> list[bytes]:
        return P.merkle_proof(self.layers, self.licenses.index(license_id))


def commit_tree(openings: list[dict]) -> CommitTree:
    """The tree over ``openings`` (store rows: ``license`` and ``commitment``, the opening hash), sorted by license.
    Raises ValueError for no openings or a license given twice."""
    if not openings:
        raise ValueError("a commitment tree needs at least one opening")
    rows = sorted(openings, key=lambda o: o["license"])
    licenses = tuple(o["license"] for o in rows)
    if len(set(licenses)) != len(licenses):
        raise ValueError(f"a license appears twice among the openings: {list(licenses)}")
    return CommitTree(licenses, P.merkle_layers([P.opening_leaf(_bytes(o["commitment"])) for o in rows]))


def record_attempt(store: Store, epoch: int, tree: CommitTree) -> None:
    """Keep the licenses of a root about to be committed (before the transaction is signed)."""
    key = f"commit.{epoch}"
    attempts = store.get(key, [])
    entry = {"root": "0x" + tree.root.hex(), "licenses": list(tree.licenses)}
    if entry not in attempts:
        store.put(key, attempts + [entry])


def tree_for_root(store: Store, epoch: int, root: bytes) -> CommitTree | None:
    """The tree of the epoch's stored openings whose root is ``root``: one of the recorded attempts, else the tree
    over every opening of the epoch (what the commit sends); None when neither matches."""
    openings = {o["license"]: o for o in store.openings(epoch)}
    if not openings:
        return None
    candidates = [[openings[lic] for lic in a["licenses"] if lic in openings]
                  for a in store.get(f"commit.{epoch}", []) if a["root"] == "0x" + root.hex()]
    candidates.append(list(openings.values()))
    for rows in candidates:
        if rows:
            tree = commit_tree(rows)
            if tree.root == root:
                return tree
    return None
