"""devnet."""
