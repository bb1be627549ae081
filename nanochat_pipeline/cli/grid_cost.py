"""What the grid will cost on this machine, said before the main job trains it, and `--yes` asked for
when that is more than an hour.

The estimate is a floor: the FLOPs of the cells to train (each cell's budget is its training FLOPs)
over the devices' peak FLOP/s, the same peak the training children quote MFU against (the preset's
`peak_flops`, a GPU's datasheet, or the recorded matmul probe of this machine). Real runs reach a
fraction of the peak, so the time is at least this.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

CONFIRM_ABOVE_S = 3600.0  # an hour: below it the job just starts
REFUSED = 3  # the exit code when the job will not start without --yes


@dataclass(frozen=True)
class GridCost:
    cells: int
    flops: float
    peak: float          # FLOP/s of all the devices a cell trains on
    how: str             # where the peak came from
    device: str

    @property
    def seconds(self) -> float:
        return self.flops / self.peak

    def line(self) -> str:
        return (f"the grid: {self.cells} cell(s) to train, {self.flops:.3g} FLOPs in all: at least "
                f"{format_duration(self.seconds)} on this machine ({self.device}, peak {self.peak:.3g} FLOP/s: "
                f"{self.how}; real training reaches a fraction of it)")


def format_duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours < 48:
        return f"{hours:.1f} hours"
    days = hours / 24
    return f"{days:,.0f} days" if days < 3 * 365 else f"{days / 365:,.0f} years"


def grid_cost(preset, cells: list) -> GridCost | None:
    """The cost of training `cells` (partitions.Cell) here; None when they would not train on this
    machine (a k8s preset) or there are none."""
    if not cells or preset.launch.backend != "local":
        return None
    import torch

    from nanochat_core.common.device import compute_dtype, resolve_device_type
    from nanochat_core.common.flops_probe import machine_peak
    from nanochat_core.common.peak_flops import resolve_peak_flops

    device_type = resolve_device_type(str(preset.train.get("device_type", "auto")))
    device = torch.device(device_type)
    dtype = compute_dtype(device_type)
    requested = float(preset.train.get("peak_flops", -1))
    if requested <= 0 and device_type != "cuda":
        # where the training children record it (their NANOCHAT_BASE_DIR is the preset's root)
        peak, how = machine_peak(device, dtype, preset.root / "peak_flops")
    else:
        peak, how = resolve_peak_flops(requested, device, dtype)
    # GPUs add up; processes on a CPU share the cores the probe already measured together
    devices = preset.nproc_per_node if device_type == "cuda" else 1
    return GridCost(len(cells), sum(c.target_flops for c in cells), peak * devices,
                    how + (f", x {devices} devices" if devices > 1 else ""), device_type)


def confirmed(cost: GridCost | None, yes: bool, say, stdin=None) -> bool:
    """Whether to train: yes when the cost is under an hour or `yes`; else ask on a terminal, and
    refuse (saying how to go on) when stdin is not one."""
    if cost is None or cost.seconds <= CONFIRM_ABOVE_S:
        return True
    say(cost.line())
    if yes:
        return True
    stdin = stdin or sys.stdin
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        say(f"not starting it: more than {format_duration(CONFIRM_ABOVE_S)} of training needs --yes when stdin is not "
            "a terminal (run the same command with --yes, or make the grid smaller in the preset)")
        return False
    say("train it? [y/N] ")
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        say("not starting it (answer y to train, or run with --yes)")
        return False
    return True
