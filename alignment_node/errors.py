"""Errors that every command-line entry point (``cli``, ``devnet``, ``models``, ``zgs``) reports the same way."""

from __future__ import annotations


class CliError(Exception):
    """A failure to report as one line (and as {"error": ...} with --json)."""

    def __init__(self, message: str, error_name: str | None = None):
        super().__init__(message)
        self.error_name = error_name
