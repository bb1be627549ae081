"""Several torchrun "nodes" of one cell on this machine, meeting through a c10d rendezvous on 127.0.0.1:
how a multi-node preset is tried before a cluster. The asset launches this module through Pipes; every
node inherits the Pipes environment and only global rank 0 reports.

    python -m nanochat_pipeline.launch.local_nodes --nodes 2 --nproc-per-node 1 --rdzv-id RUN \\
        --module nanochat_pipeline.children.train -- --depth 2 ...
"""
from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time

from nanochat_pipeline.launch.torchrun import multinode_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nanochat_pipeline.launch.local_nodes",
                                description="Run a cell as several torchrun nodes on this machine (c10d on 127.0.0.1).")
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--nproc-per-node", type=int, default=1)
    p.add_argument("--rdzv-id", required=True, help="the rendezvous id (the Dagster run id)")
    p.add_argument("--module", required=True, help="the training child module")
    p.add_argument("child_args", nargs=argparse.REMAINDER, help="-- then the child's own arguments")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    child_args = args.child_args[1:] if args.child_args[:1] == ["--"] else args.child_args
    command = multinode_command(args.module, args.nodes, args.nproc_per_node, f"127.0.0.1:{free_port()}",
                                args.rdzv_id) + child_args
    nodes = [subprocess.Popen(command) for _ in range(args.nodes)]

    def forward(signum, _frame):  # a cancel (SIGINT) reaches every node, so each saves and stops
        for node in nodes:
            if node.poll() is None:
                node.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    codes: dict[int, int] = {}
    while len(codes) < len(nodes):
        for i, node in enumerate(nodes):
            if i not in codes and node.poll() is not None:
                codes[i] = node.returncode
                if node.returncode != 0:  # the others would wait on it in a collective: stop them
                    forward(signal.SIGTERM, None)
        time.sleep(0.2)
    return next((code for code in codes.values() if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
