"""cometbft."""
