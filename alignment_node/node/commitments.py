"""The operator's commitment tree of one epoch (issue 16; ordered since security review N1): the leaf of each stored
opening sits at its license's position in the epoch's committee list (OperatorRegistry.positionsAt), in a tree
of the epoch's fixed depth, so the tree is a pure function of the openings and that layout in the store; the
commit sends its root and each reveal its proof. The contract checks each proof with the license's position, so
a root opens at most one opening per license.

The layout (list length and each license's position) is kept in the store (``layout.<epoch>``) next to the
openings: a position is fixed for the epoch and readable on chain only until two epochs later. Before a commit
transaction is sent, the set of licenses its root covers is kept in the store (``commit.<epoch>``, every root the
node tried that epoch), so the reveal after a restart rebuilds exactly the tree whose root the chain holds, even if
a later commit with more licenses never got mined."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import protocol as P
from .store import Store

log = logging.getLogger("alignment_node.audit")


def _bytes(hex0x: str) -> bytes:
    return bytes.fromhex(hex0x[2:])


@dataclass(frozen=True)
class TreeLayout:
    """An epoch's committee list as the trees need it: its length and the list position (0-based) of licenses."""

    listed: int
    positions: dict[int, int] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return P.tree_depth(self.listed)


@dataclass(frozen=True)
class CommitTree:
    licenses: tuple[int, ...]  # the licenses with a leaf, increasing
    layout: TreeLayout
    layers: list[dict[int, bytes]]

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, license_id: int) -> list[bytes]:
        if license_id not in self.licenses:
            raise ValueError(f"license {license_id} has no leaf in this tree")
        return P.merkle_proof(self.layers, self.layout.positions[license_id])


def layout_of(store: Store, epoch: int) -> TreeLayout | None:
    """The layout recorded for ``epoch`` (None before any)."""
    raw = store.get(f"layout.{epoch}")
    if raw is None:
        return None
    return TreeLayout(raw["listed"], {int(lic): pos for lic, pos in raw["positions"].items()})


def record_layout(store: Store, epoch: int, listed: int, positions: dict[int, int]) -> TreeLayout:
    """Add licenses' list positions (0-based; a license not listed is left out) to ``epoch``'s layout."""
    old = layout_of(store, epoch)
    if old is not None and old.listed != listed:
        raise ValueError(f"epoch {epoch}'s list length changed from {old.listed} to {listed}")
    merged = {**(old.positions if old else {}), **positions}
    store.put(f"layout.{epoch}", {"listed": listed, "positions": {str(lic): pos for lic, pos in merged.items()}})
    return TreeLayout(listed, merged)


async def ensure_layout(store: Store, registry, epoch: int) -> TreeLayout | None:
    """The layout of ``epoch`` covering every stored opening of the epoch: the positions not recorded yet are
    read from the chain (one positionsAt call) and recorded. None when the epoch has no openings."""
    lics = [o["license"] for o in store.openings(epoch)]
    if not lics:
        return layout_of(store, epoch)
    layout = layout_of(store, epoch)
    missing = [lic for lic in lics if layout is None or lic not in layout.positions]
    if not missing:
        return layout
    listed, positions = await registry.call("positionsAt", missing, epoch)
    return record_layout(store, epoch, listed, {lic: pos - 1 for lic, pos in zip(missing, positions) if pos})


def commit_tree(openings: list[dict], layout: TreeLayout) -> CommitTree:
    """The tree over ``openings`` (store rows: ``license`` and ``commitment``, the opening hash), each leaf at its
    license's position in ``layout``; a license without a position (not listed in the epoch) gets no leaf.
    Raises ValueError for no leaf at all or a license given twice."""
    lics = [o["license"] for o in openings]
    if len(set(lics)) != len(lics):
        raise ValueError(f"a license appears twice among the openings: {sorted(lics)}")
    rows = sorted((o for o in openings if o["license"] in layout.positions), key=lambda o: o["license"])
    unplaced = sorted(set(lics) - {o["license"] for o in rows})
    if unplaced:
        log.error("licenses %s are not in the epoch's committee list: their openings get no leaf", unplaced)
    if not rows:
        raise ValueError("a commitment tree needs at least one opening of a listed license")
    leaves = {layout.positions[o["license"]]: P.opening_leaf(_bytes(o["commitment"])) for o in rows}
    return CommitTree(tuple(o["license"] for o in rows), layout, P.merkle_layers(leaves, layout.depth))


def epoch_tree(store: Store, epoch: int) -> CommitTree:
    """The tree over every stored opening of ``epoch`` (what a commit sends). Raises ValueError without a layout
    (``ensure_layout`` first) or without openings."""
    layout = layout_of(store, epoch)
    if layout is None:
        raise ValueError(f"no tree layout recorded for epoch {epoch}")
    return commit_tree(store.openings(epoch), layout)


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
    layout = layout_of(store, epoch)
    if not openings or layout is None:
        return None
    candidates = [[openings[lic] for lic in a["licenses"] if lic in openings]
                  for a in store.get(f"commit.{epoch}", []) if a["root"] == "0x" + root.hex()]
    candidates.append(list(openings.values()))
    for rows in candidates:
        if any(o["license"] in layout.positions for o in rows):
            tree = commit_tree(rows, layout)
            if tree.root == root:
                return tree
    return None
