"""alignment-node: an open, verifiable auditor node for the alignment network (see docs/protocol.md)."""

__version__ = "0.1.0"
