"""Where a training cell's child runs: a subprocess or torchrun on this machine, one Kubernetes pod, or
several pods (a multi-node cell); the preset's [launch] table decides (presets/launch_table.py)."""
