"""The devnet: a local chain with the contracts, targets of every kind and running nodes (network.py), its
commands and scenarios (scenarios.py), their report (report.py), and the servers it runs."""

import os as _os

# The devnet's process talks gRPC (the DA disperser) from threads while it starts node and target processes (fork,
# then exec). gRPC's fork handlers then run in the child with other threads mid-call ("skipping fork() handlers")
# and can abort it before it execs (epoll_wait: Bad file descriptor, SIGABRT). Nothing here uses gRPC across a
# fork, so they are off; set before grpc is first imported.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
