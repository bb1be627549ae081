"""The training loop that base training (base_trainer.py) and SFT (sft_trainer.py) share.

`TrainingLoop` holds what is the same in both: device set-up, batch geometry, the peak-FLOP/s
and torch.compile decision, one optimizer step over gradient accumulation, the step loop with its
signal handling and checkpoint cadence, train-loss smoothing and timing, and the summary's common
figures. A trainer subclass decides what differs: where model and data come from, the schedules,
what runs periodically (`periodic`), what a checkpoint records (`save`), and its log line.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time

import torch

from nanochat_core.common.device import compute_dtype, print0
from nanochat_core.model import checkpoint as ckpt
from nanochat_core.model.checkpoint import UNTIMED_STEPS
from nanochat_core.train.batch_size import auto_device_batch_size, grad_accum_steps
from nanochat_core.common.collectives import any_rank, broadcast_from_master, mean_over_ranks, min_over_ranks
from nanochat_core.train.cpu_allocator import keep_freed_memory
from nanochat_core.common.peak_flops import resolve_peak_flops
from nanochat_core.train.stop_signal import stop_on_signals

EMA_BETA = 0.9  # smoothing of the logged train loss (debiased), as nanochat
# --compile auto on CPU. Measured by benchmarks/bench_base_train.py (d4, seq 512, batch 8192, 2 cores,
# fp32 peak probe ~300 GFLOP/s, cold inductor cache): eager 3,894 tok/s, compiled 3,923-4,440 tok/s
# (x1.01-1.20 once the allocator keeps freed memory, see cpu_allocator.py), while a cold compile adds
# ~35 s: a 30-step run took 111 s compiled vs 73 s eager. Even at the best gain compiling breaks even
# only after ~90 such steps (~80 s of compute at peak), so auto compiles on CPU only for long runs.
CPU_COMPILE_MIN_SECONDS = 300.0


@dataclasses.dataclass
class LoopState:
    """What the loop carries across a resume besides model, optimizer and data position."""
    min_val_bpb: float = float("inf")
    smooth_train_loss: float = 0.0
    total_training_time: float = 0.0


def step_line(where: str, m: dict, extra: str = "") -> str:
    """nanochat's per-step log line from _step_metrics' dict; `extra` ("name: value | ") goes before total time."""
    return (f"{where} | loss: {m['loss']:.6f} | lrm: {m['lrm']:.2f} | dt: {m['dt'] * 1000:.2f}ms | "
            f"tok/sec: {m['tok_per_sec']:,} | mfu: {m['mfu']:.2f} | {extra}total time: {m['total_time'] / 60:.2f}m")


class TrainingLoop:
    """The loop over steps; a trainer subclass supplies the run's pieces.

    Before `run`, a subclass sets seq_len, total_batch_size, num_iterations, flops_per_token,
    param_counts, model_config, ckpt_dir, orig_model, device_batch_size and grad_accum (_batch_geometry),
    optimizer, model and peak_flops (_compile_model), train_loader, loader_state and tracker; on a
    resume it calls _continue_from. It defines schedule(step) -> lrm, is_last_step(step),
    periodic(step, last_step), save(step, finished), log_step(step, loss, lrm, dt), summary(interrupted).
    """

    def __init__(self, args, device_type, info, on_metrics):
        from nanochat_core.tokenizer.bpe import get_token_bytes, get_tokenizer

        self.args, self.info, self.on_metrics = args, info, on_metrics
        self.device, self.dtype = info.device, compute_dtype(device_type)
        if self.device.type == "cpu":
            keep_freed_memory()  # a third of a CPU step went to re-faulting freed pages
        self.tokenizer = get_tokenizer()
        self.token_bytes = get_token_bytes(device=self.device)
        self.start_step, self.loop, self.val_bpb = 0, LoopState(), None  # a fresh run; see _continue_from

    # ---- set-up -----------------------------------------------------------------------------
    def _continue_from(self, meta: dict) -> None:
        """Take the step, latest val bpb and loop state of the checkpoint being resumed."""
        self.start_step, self.val_bpb = meta["step"], meta.get("val_bpb")
        self.loop = LoopState(**meta["loop_state"])
        print0(f"Resuming from {ckpt.meta_path(self.ckpt_dir, self.start_step)}")

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

    def _load_optimizer_state(self, optimizer, optim_state: dict) -> None:
        """The saved per-parameter state (momentum buffers, Adam moments) with this run's hyperparameters:
        load_state_dict would also bring back the saved ones (LRs, momentum, decay)."""
        ours = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        optimizer.load_state_dict(optim_state)
        for group, hyper in zip(optimizer.param_groups, ours):
            group.update(hyper)

    def _apply_schedule(self, lrm: float, momentum: float, weight_decay: float | None = None) -> None:
        """This step's LR multiplier on every group; Muon momentum (and decay, when given) on the Muon groups."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            if group["kind"] == "muon":
                group["momentum"] = momentum
                if weight_decay is not None:
                    group["weight_decay"] = weight_decay

    # ---- periodic work ----------------------------------------------------------------------
    def _eval_steps(self) -> int:
        """Forward passes of one validation: --eval-tokens over all processes' rows."""
        return max(1, self.args.eval_tokens // (self.device_batch_size * self.seq_len * self.info.world_size))

    @contextlib.contextmanager
    def _evaluating(self):
        """The original model in eval mode for the block, back in train mode after it."""
        self.orig_model.eval()
        yield self.orig_model
        self.orig_model.train()

    def _record_val_bpb(self, step: int, val_bpb: float) -> None:
        self.val_bpb = val_bpb
        self.loop.min_val_bpb = min(self.loop.min_val_bpb, val_bpb)
        print0(f"Step {step:05d} | Validation bpb: {val_bpb:.6f}")
        self._report({"step": step, "val_bpb": val_bpb})

    def _checkpoint_meta(self, step: int, dataloader_state) -> dict:
        """nanochat's meta keys, in its order; a trainer adds its own after them."""
        return {
            "step": step, "val_bpb": self.val_bpb, "model_config": self.model_config, "user_config": vars(self.args),
            "device_batch_size": self.device_batch_size, "max_seq_len": self.seq_len,
            "total_batch_size": self.total_batch_size, "dataloader_state_dict": dataloader_state,
            "loop_state": dataclasses.asdict(self.loop),
            "peak_flops": self.peak_flops,  # ours: the MFU basis, so the report card can recompute MFU
            "attention": self.attention.backend, "attention_reason": self.attention.reason,  # ours
        }

    def _write_checkpoint(self, step: int, meta: dict) -> None:
        ckpt.save_checkpoint(self.ckpt_dir, step, self.orig_model.state_dict(), self.optimizer.state_dict(),
                             meta, rank=self.info.rank)
        print0(f"Saved checkpoint {ckpt.meta_path(self.ckpt_dir, step)}")

    def _report(self, metrics: dict) -> None:
        if self.info.is_master:
            self.tracker.log(metrics)
            if self.on_metrics is not None:
                self.on_metrics(metrics)

    # ---- the loop ---------------------------------------------------------------------------
    def _after_step(self) -> None:
        """Bookkeeping after the optimizer step (SFT counts the conversations consumed)."""

    def train_step(self, batch) -> tuple[float, float, tuple]:
        """One optimizer step over grad_accum micro-batches; returns (mean loss, lrm, next batch)."""
        loss_sum = torch.zeros((), device=self.device)
        x, y, state = batch
        lrm = self.schedule(self.step)  # from progress before this step's data
        for _ in range(self.grad_accum):
            loss = self.model(x, y)
            loss_sum += loss.detach()
            (loss / self.grad_accum).backward()
            self.loader_state = state
            x, y, state = next(self.train_loader)  # prefetch while the optimizer runs
        self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        # Mean over micro-steps and ranks (nanochat logs rank 0's last micro-step): the same number
        # for any split of one batch into processes and micro-steps.
        mean_loss = mean_over_ranks(loss_sum / self.grad_accum).item()
        self._after_step()
        return mean_loss, lrm, (x, y, state)

    def run(self) -> dict:
        a = self.args
        batch = next(self.train_loader)
        self.step = self.start_step
        self.timing = {"steady_tokens": 0, "steady_seconds": 0.0, "seconds": 0.0}
        self.last_loss, interrupted = None, False
        with stop_on_signals() as stop:
            while True:
                step = self.step
                last_step = self.is_last_step(step)
                # A signal stops the run first thing at a step boundary: save and leave, so the
                # checkpoint lands within one step of the request (all ranks agree on the step).
                interrupted = not last_step and any_rank(bool(stop), self.device)
                if interrupted:
                    print0(f"Interrupted by signal: saving a checkpoint at step {step} "
                           f"(resume with --resume-from-step {step})")
                    self.save(step, finished=False)
                    break
                self.periodic(step, last_step)
                if last_step or (step > 0 and step != self.start_step and a.save_every > 0 and step % a.save_every == 0):
                    self.save(step, finished=last_step)
                if last_step:
                    break

                t0 = time.perf_counter()
                loss, lrm, batch = self.train_step(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                self.log_step(step, loss, lrm, time.perf_counter() - t0)
                self.step += 1
        self.tracker.finish()
        return self.summary(interrupted)

    def _step_metrics(self, step: int, loss: float, lrm: float, dt: float) -> dict:
        """Smooth the loss and count the time of one step; the metrics every step reports."""
        self.last_loss = loss
        self.loop.smooth_train_loss = EMA_BETA * self.loop.smooth_train_loss + (1 - EMA_BETA) * loss
        debiased = self.loop.smooth_train_loss / (1 - EMA_BETA ** (step + 1))
        tok_per_sec = int(self.total_batch_size / dt)
        mfu = 100 * self.flops_per_token * self.total_batch_size / dt / (self.peak_flops * self.info.world_size)
        self.timing["seconds"] += dt
        if step > UNTIMED_STEPS:
            self.loop.total_training_time += dt
            self.timing["steady_tokens"] += self.total_batch_size
            self.timing["steady_seconds"] += dt
        return {"step": step, "loss": debiased, "raw_loss": loss, "lrm": lrm, "dt": dt,
                "tok_per_sec": tok_per_sec, "mfu": mfu, "total_time": self.loop.total_training_time}

    def throughput(self) -> dict:
        """This process's steps, their wall time, tok/s and MFU: the numbers of the closing log line,
        which the checkpoint meta records too, so the report card shows exactly what the log said."""
        t = self.timing
        steps_run = self.step - self.start_step
        if t["steady_seconds"] > 0:  # steady state, as nanochat's "total time" (first steps excluded)
            tokens_per_sec = t["steady_tokens"] / t["steady_seconds"]
        else:
            tokens_per_sec = steps_run * self.total_batch_size / t["seconds"] if t["seconds"] > 0 else 0.0
        mfu = 100 * self.flops_per_token * tokens_per_sec / (self.peak_flops * self.info.world_size)
        return {"steps": steps_run, "training_seconds": t["seconds"], "tokens_per_sec": tokens_per_sec, "mfu": mfu}

    def _summary(self, interrupted: bool, num_iterations: int, model_tag: str, done_note: str = "") -> dict:
        """Print the closing lines; the summary keys both trainers return, in their order."""
        t = self.timing
        steps_run, tokens_per_sec, mfu = (self.throughput()[k] for k in ("steps", "tokens_per_sec", "mfu"))
        final_loss = self.loop.smooth_train_loss / (1 - EMA_BETA ** self.step) if self.step > 0 else None
        min_bpb = self.loop.min_val_bpb
        print0(f"Training done: {steps_run} steps in {t['seconds']:.1f}s, {tokens_per_sec:,.0f} tok/s, "
               f"MFU {mfu:.2f}%{done_note}")
        if self.device.type == "cuda":
            print0(f"Peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f}MiB")
        return {
            "step": self.step, "num_iterations": num_iterations, "interrupted": interrupted,
            "val_bpb": self.val_bpb, "min_val_bpb": min_bpb if math.isfinite(min_bpb) else None,
            "final_loss": final_loss, "final_raw_loss": self.last_loss,
            "tokens_trained": self.step * self.total_batch_size, "tokens_per_sec": tokens_per_sec, "mfu": mfu,
            "peak_flops": self.peak_flops, "param_counts": dict(self.param_counts),
            "attention": self.attention.backend,
            "training_seconds": t["seconds"], "total_training_time": self.loop.total_training_time,
            "flops_per_token": self.flops_per_token,
            "total_flops": self.flops_per_token * self.step * self.total_batch_size,
            "total_batch_size": self.total_batch_size, "device_batch_size": self.device_batch_size,
            "grad_accum_steps": self.grad_accum, "world_size": self.info.world_size,
            "model_tag": model_tag, "checkpoint_dir": str(self.ckpt_dir),
        }
