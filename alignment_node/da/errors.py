"""The one exception the DA wire and BLS code raises for malformed input."""

from __future__ import annotations


class DaError(ValueError):
    """Input from a DA signer (or about one) that does not have the shape 0G's code produces.

    `field` names the offending part (e.g. ``"signatures[2]"``) when known.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
