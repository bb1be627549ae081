"""The command line that starts a training child: plain python, torchrun on one node, or torchrun on
several nodes meeting through a c10d rendezvous (the same line on every node)."""
from __future__ import annotations

import sys

RDZV_PORT = 29400  # torchrun's own default c10d port


def child_command(module: str, nproc: int, python: str = sys.executable) -> list[str]:
    """One node: python itself, or torchrun --standalone for several processes."""
    if nproc > 1:
        return ["torchrun", "--standalone", f"--nproc_per_node={nproc}", "-m", module]
    return [python, "-m", module]


def multinode_command(module: str, nodes: int, nproc: int, rdzv_endpoint: str, rdzv_id: str,
                      local_addr: str | None = None) -> list[str]:
    """Every node runs this line; the nodes meet at rdzv_endpoint (host:port) under rdzv_id.

    c10d numbers the nodes by their sorted addresses, so with local_addr set to each node's stable
    name, the node whose name sorts first (pod 0) holds global rank 0, the one that reports to Dagster.
    No restarts: a lost node fails the cell, which resumes from its last checkpoint on the next run."""
    return ["torchrun", f"--nnodes={nodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}", "--max-restarts=0",
            *([f"--local-addr={local_addr}"] if local_addr else []), "-m", module]
