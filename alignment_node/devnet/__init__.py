"""The devnet: a local chain with the contracts, targets of every kind and running nodes (network.py), its
commands and scenarios (scenarios.py), their report (report.py), and the servers it runs."""
