"""0G DA signer support: BN254 BLS (`bls`) and the signer gRPC wire formats (`wire`, `proto`).

The formats and their sources are restated in docs/spec/DA.md.
"""

from .errors import DaError

__all__ = ["DaError"]
