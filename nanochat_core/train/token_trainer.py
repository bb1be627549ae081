"""What base training and SFT share: training on token batches.

Batch geometry (device batch, gradient accumulation), the peak-FLOP/s basis of MFU, the attention
backend and the torch.compile decision, one optimizer step over gradient accumulation with the next
batch prefetched, validation bpb, and the step metrics, throughput and summary figures that follow
from a fixed number of tokens per step. RL samples rollouts of varying length: it has none of these.
"""
from __future__ import annotations

import math

import torch

from nanochat_core.common.collectives import broadcast_from_master, mean_over_ranks, min_over_ranks
from nanochat_core.common.device import print0
from nanochat_core.common.peak_flops import resolve_peak_flops
from nanochat_core.train.batch_size import auto_device_batch_size, grad_accum_steps
from nanochat_core.train.trainer_loop import Trainer, nanochat_meta

# --compile auto on CPU. Measured by benchmarks/bench_base_train.py (d4, seq 512, batch 8192, 2 cores,
# fp32 peak probe ~300 GFLOP/s, cold inductor cache): eager 3,894 tok/s, compiled 3,923-4,440 tok/s
# (x1.01-1.20 once the allocator keeps freed memory, see cpu_allocator.py), while a cold compile adds
# ~35 s: a 30-step run took 111 s compiled vs 73 s eager. Even at the best gain compiling breaks even
# only after ~90 such steps (~80 s of compute at peak), so auto compiles on CPU only for long runs.
CPU_COMPILE_MIN_SECONDS = 300.0


def step_line(where: str, m: dict, extra: str = "") -> str:
    """nanochat's per-step log line from _step_metrics' dict; `extra` ("name: value | ") goes before total time."""
    return (f"{where} | loss: {m['loss']:.6f} | lrm: {m['lrm']:.2f} | dt: {m['dt'] * 1000:.2f}ms | "
            f"tok/sec: {m['tok_per_sec']:,} | mfu: {m['mfu']:.2f} | {extra}total time: {m['total_time'] / 60:.2f}m")


class TokenTrainer(Trainer):
    """A trainer on token batches. Its subclass sets seq_len, total_batch_size, num_iterations,
    flops_per_token, param_counts, model_config, ckpt_dir and orig_model, then calls _batch_geometry,
    builds the optimizer, calls _compile_model, and sets train_loader and loader_state (the position
    after the last batch trained on)."""

    def __init__(self, args, device_type, info, on_metrics):
        from nanochat_core.tokenizer.bpe import get_token_bytes

        super().__init__(args, device_type, info, on_metrics)
        self.token_bytes = get_token_bytes(device=self.device)
        self.val_bpb = None  # the latest validation's

    # ---- set-up -----------------------------------------------------------------------------
    def _continue_from(self, meta: dict) -> None:
        super()._continue_from(meta)
        self.val_bpb = meta.get("val_bpb")

    def _batch_geometry(self) -> tuple[int, int]:
        dbs, world = self.args.device_batch_size, self.info.world_size
        if dbs == "auto":
            dbs, why = auto_device_batch_size(self.orig_model, self.total_batch_size, self.seq_len, world, self.device)
            dbs = min_over_ranks(dbs, self.device)
            print0(f"--device-batch-size auto: chose {dbs} ({why})")
        dbs = int(dbs)  # SFT may inherit it from a base checkpoint's meta
        accum = grad_accum_steps(self.total_batch_size, dbs, self.seq_len, world)
        print0(f"Tokens per micro-step: {dbs * self.seq_len * world:,}; gradient accumulation steps: {accum}")
        return dbs, accum

    def _compile_model(self) -> None:
        """Settle the MFU basis, then decide on torch.compile (which the basis informs on CPU)."""
        # Rank 0 alone measures (probes run at once on shared CPU cores would pull each other down);
        # the broadcast gives every rank its figure as the one MFU basis.
        peak, source = resolve_peak_flops(self.args.peak_flops, self.device, self.dtype) if self.info.is_master \
            else (0.0, "")
        self.peak_flops = broadcast_from_master(peak, self.device)
        print0(f"Peak FLOP/s per device for MFU: {self.peak_flops:.4e} ({source})")
        # before compiling: the choice builds the training shape's flex block masks eagerly
        self.attention = self.orig_model.set_attention(getattr(self.args, "attention", "auto"))
        print0(f"Attention: {self.attention}")
        use_compile, why = self._decide_compile()
        print0(f"torch.compile: {'on' if use_compile else 'off'} ({why})")
        # Train through the compiled model; evaluate and save through the original (other shapes, clean keys).
        self.model = torch.compile(self.orig_model, dynamic=False) if use_compile else self.orig_model

    def _decide_compile(self) -> tuple[bool, str]:
        """--compile auto: on CUDA always; on CPU when the run is long enough to repay compiling."""
        if self.args.compile != "auto":
            return self.args.compile == "1", f"--compile {self.args.compile}"
        if self.device.type == "cuda":
            return True, "auto: CUDA"
        flops = self.flops_per_token * self.total_batch_size * (self.num_iterations - self.start_step)
        seconds = flops / (self.peak_flops * self.info.world_size)
        verdict = "repays" if seconds > CPU_COMPILE_MIN_SECONDS else "is too short to repay"
        return seconds > CPU_COMPILE_MIN_SECONDS, f"auto: ~{seconds:.0f}s of compute at peak {verdict} compiling"

    # ---- periodic work ----------------------------------------------------------------------
    def _eval_steps(self) -> int:
        """Forward passes of one validation: --eval-tokens over all processes' rows."""
        return max(1, self.args.eval_tokens // (self.device_batch_size * self.seq_len * self.info.world_size))

    def _record_val_bpb(self, step: int, val_bpb: float) -> None:
        self.val_bpb = val_bpb
        self.loop.min_val_bpb = min(self.loop.min_val_bpb, val_bpb)
        print0(f"Step {step:05d} | Validation bpb: {val_bpb:.6f}")
        self._report({"step": step, "val_bpb": val_bpb})

    def _checkpoint_meta(self, step: int, dataloader_state) -> dict:
        """nanochat's meta keys, then the attention backend; a trainer adds its own after them."""
        return nanochat_meta(step, self.val_bpb, self.model_config, self.args, self.device_batch_size, self.seq_len,
                             self.total_batch_size, dataloader_state, self.loop, self.peak_flops) | {
            "attention": self.attention.backend, "attention_reason": self.attention.reason,  # ours
        }

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        self.batch = next(self.train_loader)
        return super().run()

    def train_step(self, step: int) -> tuple[float, float]:
        """One optimizer step over grad_accum micro-batches, prefetching the next step's first batch."""
        loss_sum = torch.zeros((), device=self.device)
        x, y, state = self.batch
        lrm = self.schedule(step)  # from progress before this step's data
        for _ in range(self.grad_accum):
            loss = self.model(x, y)
            loss_sum += loss.detach()
            (loss / self.grad_accum).backward()
            self.loader_state = state
            x, y, state = next(self.train_loader)  # prefetch while the optimizer runs
        self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        self.batch = (x, y, state)
        # Mean over micro-steps and ranks (nanochat logs rank 0's last micro-step): the same number
        # for any split of one batch into processes and micro-steps.
        return mean_over_ranks(loss_sum / self.grad_accum).item(), lrm

    def _step_metrics(self, step: int, loss: float, lrm: float, dt: float) -> dict:
        """Smooth the loss and count the time of one step; the metrics every step reports."""
        debiased = self._record_step(step, loss, dt)
        tok_per_sec = int(self.total_batch_size / dt)
        mfu = 100 * self.flops_per_token * self.total_batch_size / dt / (self.peak_flops * self.info.world_size)
        return {"step": step, "loss": debiased, "raw_loss": loss, "lrm": lrm, "dt": dt,
                "tok_per_sec": tok_per_sec, "mfu": mfu, "total_time": self.loop.total_training_time}

    def throughput(self, step: int) -> dict:
        """This process's steps up to `step`, their wall time, tok/s and MFU: the numbers of the closing
        log line, which the checkpoint meta records too, so the report card shows exactly what the log said."""
        steps_run = step - self.start_step
        if self.timed_seconds > 0:  # steady state, as nanochat's "total time" (first steps excluded)
            tokens_per_sec = self.timed_steps * self.total_batch_size / self.timed_seconds
        else:
            tokens_per_sec = steps_run * self.total_batch_size / self.seconds if self.seconds > 0 else 0.0
        mfu = 100 * self.flops_per_token * tokens_per_sec / (self.peak_flops * self.info.world_size)
        return {"steps": steps_run, "training_seconds": self.seconds, "tokens_per_sec": tokens_per_sec, "mfu": mfu}

    def _summary(self, step: int, interrupted: bool, num_iterations: int, model_tag: str, done_note: str = "") -> dict:
        """Print the closing lines; the summary keys both token trainers return, in their order."""
        steps_run, tokens_per_sec, mfu = (self.throughput(step)[k] for k in ("steps", "tokens_per_sec", "mfu"))
        min_bpb = self.loop.min_val_bpb
        print0(f"Training done: {steps_run} steps in {self.seconds:.1f}s, {tokens_per_sec:,.0f} tok/s, "
               f"MFU {mfu:.2f}%{done_note}")
        if self.device.type == "cuda":
            print0(f"Peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f}MiB")
        return {
            "step": step, "num_iterations": num_iterations, "interrupted": interrupted,
            "val_bpb": self.val_bpb, "min_val_bpb": min_bpb if math.isfinite(min_bpb) else None,
            "final_loss": self._final_loss(step), "final_raw_loss": self.last_loss,
            "tokens_trained": step * self.total_batch_size, "tokens_per_sec": tokens_per_sec, "mfu": mfu,
            "peak_flops": self.peak_flops, "param_counts": dict(self.param_counts),
            "attention": self.attention.backend,
            "training_seconds": self.seconds, "total_training_time": self.loop.total_training_time,
            "flops_per_token": self.flops_per_token,
            "total_flops": self.flops_per_token * step * self.total_batch_size,
            "total_batch_size": self.total_batch_size, "device_batch_size": self.device_batch_size,
            "grad_accum_steps": self.grad_accum, "world_size": self.info.world_size,
            "model_tag": model_tag, "checkpoint_dir": str(self.ckpt_dir),
        }
