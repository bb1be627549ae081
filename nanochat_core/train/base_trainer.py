"""Base pretraining (nanochat's base_train): one function that the CLI and the pipeline both call.

Everything follows from --depth through nanochat_core.sizing; this module runs the loop:
gradient accumulation, the LR / momentum / weight-decay schedules, periodic validation bpb and
samples, checkpoints (at --save-every, at the end, and on SIGINT/SIGTERM) and exact resume.
Log lines keep nanochat's format so existing log parsers keep working.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch

from nanochat_core import settings
from nanochat_core.device import compute_dtype, init_distributed, print0, resolve_device_type, shutdown_distributed
from nanochat_core.train import checkpoint as ckpt
from nanochat_core.train.args import validate_args
from nanochat_core.train.batch_size import auto_device_batch_size, grad_accum_steps
from nanochat_core.train.collectives import any_rank, broadcast_from_master, mean_over_ranks, min_over_ranks
from nanochat_core.train.core_hook import NOT_AVAILABLE, find_core_evaluator
from nanochat_core.train.cpu_allocator import keep_freed_memory
from nanochat_core.train.fp8 import check_fp8, convert_fp8
from nanochat_core.train.peak_flops import resolve_peak_flops
from nanochat_core.train.schedules import base_lr_multiplier, muon_momentum, muon_weight_decay
from nanochat_core.train.stop_signal import stop_on_signals
from nanochat_core.train.tracking import check_tracking_available, make_tracker

EMA_BETA = 0.9  # smoothing of the logged train loss (debiased), as nanochat
UNTIMED_STEPS = 10  # nanochat leaves the first steps (compilation, warm-up) out of "total time"
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


def train_base(args, on_metrics: Callable[[dict], None] | None = None) -> dict:
    """Train a base model as `args` (see nanochat_core.train.args) say; return summary metrics.

    `on_metrics` is called on rank 0 after every step with {step, loss (smoothed, as logged),
    raw_loss, lrm, dt, tok_per_sec, mfu, total_time} and after every validation with {step, val_bpb}.
    """
    args = validate_args(args)
    settings.load_dotenv_file()
    device_type = resolve_device_type(args.device_type)
    # Refuse unusable options before any work or any file is written.
    check_tracking_available(args.run)
    check_fp8(args.fp8, device_type)
    info = init_distributed(device_type)
    try:
        return BaseTrainer(args, device_type, info, on_metrics).run()
    finally:
        shutdown_distributed()


class BaseTrainer:
    def __init__(self, args, device_type, info, on_metrics):
        from nanochat_core.tokenizer import get_token_bytes, get_tokenizer

        self.args, self.info, self.on_metrics = args, info, on_metrics
        self.device, self.dtype = info.device, compute_dtype(device_type)
        if self.device.type == "cpu":
            keep_freed_memory()  # a third of a CPU step went to re-faulting freed pages
        self.tokenizer = get_tokenizer()
        self.token_bytes = get_token_bytes(device=self.device)
        self.plan = self._plan()
        self.num_iterations, self.total_batch_size = self.plan.num_iterations, self.plan.total_batch_size
        self.seq_len = args.max_seq_len
        self.orig_model = self._build_model()
        self.device_batch_size, self.grad_accum = self._batch_geometry()
        self.ckpt_dir = ckpt.checkpoint_dir(args.model_tag)
        self.start_step, self.loop, self.val_bpb = 0, LoopState(), None
        model_state, optim_state, loader_state = self._resume_state()
        if model_state is not None:
            self.orig_model.load_state_dict(model_state, strict=True)
        if args.fp8:
            convert_fp8(self.orig_model)  # before the optimizer is built, so it holds the converted params
        self.optimizer = self._build_optimizer(optim_state)
        del model_state, optim_state

        peak, source = resolve_peak_flops(args.peak_flops, self.device, self.dtype)
        self.peak_flops = broadcast_from_master(peak, self.device)  # one MFU basis for every rank
        print0(f"Peak FLOP/s per device for MFU: {self.peak_flops:.4e} ({source})")
        use_compile, why = self._decide_compile()
        print0(f"torch.compile: {'on' if use_compile else 'off'} ({why})")
        # Train through the compiled model; evaluate and save through the original (other shapes, clean keys).
        self.model = torch.compile(self.orig_model, dynamic=False) if use_compile else self.orig_model

        self.train_loader = self._loader("train", loader_state)
        self.loader_state = loader_state  # the position after the last batch the model trained on
        self.tracker = make_tracker(args.run, vars(args), info.is_master)
        self.core_fn = self._find_core_metric() if args.core_metric_every > 0 else None
        self.core_at: tuple[int, float | None, bool] | None = None  # (step, score, partial) of the latest CORE

    # ---- set-up -----------------------------------------------------------------------------
    def _plan(self):
        from nanochat_core.sizing import plan_training

        a = self.args
        plan = plan_training(
            a.depth, self.tokenizer.get_vocab_size(), max_seq_len=a.max_seq_len, aspect_ratio=a.aspect_ratio,
            head_dim=a.head_dim, window_pattern=a.window_pattern, num_iterations=a.num_iterations,
            target_flops=a.target_flops, target_param_data_ratio=a.target_param_data_ratio,
            total_batch_size=a.total_batch_size, weight_decay=a.weight_decay, embedding_lr=a.embedding_lr,
            unembedding_lr=a.unembedding_lr, matrix_lr=a.matrix_lr, scalar_lr=a.scalar_lr)
        print0(f"Model config: {dataclasses.asdict(plan.model_config)}")
        print0(f"Parameters: {plan.param_counts}; scaling params {plan.scaling_params:,}; "
               f"FLOPs/token {plan.flops_per_token:e}")
        print0(f"Horizon from {plan.horizon_source}: {plan.num_iterations:,} steps x {plan.total_batch_size:,} "
               f"tokens = {plan.num_iterations * plan.total_batch_size:,} tokens")
        return plan

    def _build_model(self):
        """Built on the meta device (no memory), then materialized on ours and initialized."""
        from nanochat_core.model import GPT

        torch.manual_seed(42)  # the same initial weights on every rank and in every run
        with torch.device("meta"):
            model = GPT(self.plan.model_config)
        model.to_empty(device=self.device)
        model.init_weights()
        return model

    def _batch_geometry(self) -> tuple[int, int]:
        dbs = self.args.device_batch_size
        world = self.info.world_size
        if dbs == "auto":
            dbs, why = auto_device_batch_size(self.orig_model, self.total_batch_size, self.seq_len, world, self.device)
            dbs = min_over_ranks(dbs, self.device)
            print0(f"--device-batch-size auto: chose {dbs} ({why})")
        accum = grad_accum_steps(self.total_batch_size, dbs, self.seq_len, world)
        print0(f"Tokens per micro-step: {dbs * self.seq_len * world:,}; gradient accumulation steps: {accum}")
        return dbs, accum

    def _resume_state(self):
        """(model state, optimizer state, loader state) of --resume-from-step, or Nones for a fresh run."""
        a = self.args
        if a.resume_from_step < 0:
            return None, None, None
        model_state, optim_state, meta = ckpt.load_checkpoint(
            self.ckpt_dir, a.resume_from_step, device=self.device, load_optimizer=True, rank=self.info.rank)
        # Resuming with another geometry would silently change the data order or the model.
        expected = {"total_batch_size": self.total_batch_size, "max_seq_len": self.seq_len,
                    "model_config": dataclasses.asdict(self.plan.model_config),
                    "world_size": self.info.world_size}
        for key, value in expected.items():
            if meta.get(key, value) != value:
                raise ValueError(f"--resume-from-step {a.resume_from_step}: {ckpt.meta_path(self.ckpt_dir, meta['step'])} "
                                 f"has {key}={meta[key]}, this run has {value}; resume with the original run's "
                                 "flags and number of processes")
        self.start_step, self.val_bpb = meta["step"], meta.get("val_bpb")
        self.loop = LoopState(**meta["loop_state"])
        print0(f"Resuming from {ckpt.meta_path(self.ckpt_dir, self.start_step)}")
        return model_state, optim_state, meta["dataloader_state_dict"]

    def _build_optimizer(self, optim_state):
        p, frac = self.plan, self.args.init_lr_frac  # --init-lr-frac scales every peak LR
        optimizer = self.orig_model.setup_optimizer(
            unembedding_lr=p.unembedding_lr * frac, embedding_lr=p.embedding_lr * frac,
            matrix_lr=p.matrix_lr * frac, weight_decay=p.weight_decay, scalar_lr=p.scalar_lr * frac,
            distributed=self.info.world_size > 1)
        if optim_state is not None:
            # load_state_dict also restores the saved LRs; keep this run's (identical unless the flags changed).
            initial = [g["initial_lr"] for g in optimizer.param_groups]
            optimizer.load_state_dict(optim_state)
            for group, lr in zip(optimizer.param_groups, initial):
                group["initial_lr"] = lr
        return optimizer

    def _decide_compile(self) -> tuple[bool, str]:
        """--compile auto: on CUDA always; on CPU when the run is long enough to repay compiling."""
        if self.args.compile != "auto":
            return self.args.compile == "1", f"--compile {self.args.compile}"
        if self.device.type == "cuda":
            return True, "auto: CUDA"
        flops = self.plan.flops_per_token * self.total_batch_size * (self.num_iterations - self.start_step)
        seconds = flops / (self.peak_flops * self.info.world_size)
        verdict = "repays" if seconds > CPU_COMPILE_MIN_SECONDS else "is too short to repay"
        return seconds > CPU_COMPILE_MIN_SECONDS, f"auto: ~{seconds:.0f}s of compute at peak {verdict} compiling"

    def _loader(self, split: str, state=None):
        from nanochat_core.data.loader import pretraining_loader

        return pretraining_loader(self.tokenizer, self.device_batch_size, self.seq_len, split, device=self.device,
                                  resume_state_dict=state, rank=self.info.rank, world_size=self.info.world_size)

    def _find_core_metric(self):
        evaluator = find_core_evaluator()
        if evaluator is None:
            print0(f"{NOT_AVAILABLE}: --core-metric-every {self.args.core_metric_every} is ignored for this run")
        else:
            from nanochat_core.evaluation.core_bundle import ensure_bundle_distributed

            try:  # fetch (or fail on) the bundle before training, not at the first CORE step
                ensure_bundle_distributed(None, self.info.is_master)
            except (RuntimeError, FileNotFoundError) as exc:
                raise RuntimeError(f"{exc}; or turn periodic CORE off with --core-metric-every -1") from exc
        return evaluator

    # ---- periodic work ----------------------------------------------------------------------
    def schedule(self, it: int) -> float:
        a = self.args
        lrm = base_lr_multiplier(it, self.num_iterations, a.warmup_steps, a.warmdown_ratio, a.final_lr_frac,
                                 a.warmup_ratio)
        momentum = muon_momentum(it)
        weight_decay = muon_weight_decay(it, self.num_iterations, self.plan.weight_decay)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            if group["kind"] == "muon":
                group["momentum"] = momentum
                group["weight_decay"] = weight_decay
        return lrm

    def evaluate(self, step: int) -> None:
        from nanochat_core.evaluation.bpb import evaluate_bpb

        steps = max(1, self.args.eval_tokens // (self.device_batch_size * self.seq_len * self.info.world_size))
        self.orig_model.eval()
        self.val_bpb = evaluate_bpb(self.orig_model, self._loader("val"), steps, self.token_bytes)
        self.orig_model.train()
        self.loop.min_val_bpb = min(self.loop.min_val_bpb, self.val_bpb)
        print0(f"Step {step:05d} | Validation bpb: {self.val_bpb:.6f}")
        self._report({"step": step, "val_bpb": self.val_bpb})

    def core_metric(self, step: int) -> None:
        self.orig_model.eval()
        from nanochat_core.evaluation.core import format_core

        # per-task lines only from rank 0; the Step line below is the one to grep
        result = self.core_fn(self.orig_model, self.tokenizer, self.device,
                              max_per_task=self.args.core_metric_max_per_task,
                              batch_size=self.device_batch_size, context=self.seq_len, log=print0)
        self.orig_model.train()
        self.core_at = (step, result["core_metric"], result["partial"])
        print0(f"Step {step:05d} | CORE metric: {format_core(result)}")
        self._report({"step": step, "core_metric": result["core_metric"]})

    def sample(self) -> None:
        from nanochat_core.train.samples import print_samples

        self.orig_model.eval()
        print_samples(self.orig_model, self.tokenizer)
        self.orig_model.train()

    def save(self, step: int) -> None:
        meta = {
            "step": step, "val_bpb": self.val_bpb,
            "model_config": dataclasses.asdict(self.plan.model_config), "user_config": vars(self.args),
            "device_batch_size": self.device_batch_size, "max_seq_len": self.seq_len,
            "total_batch_size": self.total_batch_size, "dataloader_state_dict": self.loader_state,
            "loop_state": dataclasses.asdict(self.loop),
            # ours, beyond nanochat's keys
            "num_iterations": self.num_iterations, "world_size": self.info.world_size,
            "flops_per_token": self.plan.flops_per_token, "tokens_trained": step * self.total_batch_size,
            "horizon_source": self.plan.horizon_source,
        }
        if self.core_at is not None and self.core_at[0] == step:  # only a score of these very weights
            meta["core_score"], meta["core_partial"] = self.core_at[1:]
        ckpt.save_checkpoint(self.ckpt_dir, step, self.orig_model.state_dict(), self.optimizer.state_dict(),
                             meta, rank=self.info.rank)
        print0(f"Saved checkpoint {ckpt.meta_path(self.ckpt_dir, step)}")

    def _report(self, metrics: dict) -> None:
        if self.info.is_master:
            self.tracker.log(metrics)
            if self.on_metrics is not None:
                self.on_metrics(metrics)

    # ---- the loop ---------------------------------------------------------------------------
    def train_step(self, batch) -> tuple[float, float, tuple]:
        """One optimizer step over grad_accum micro-batches; returns (mean loss, lrm, next batch)."""
        loss_sum = torch.zeros((), device=self.device)
        x, y, state = batch
        for _ in range(self.grad_accum):
            loss = self.model(x, y)
            loss_sum += loss.detach()
            (loss / self.grad_accum).backward()
            self.loader_state = state
            x, y, state = next(self.train_loader)  # prefetch while the optimizer runs
        lrm = self.schedule(self.step)
        self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        # Mean over micro-steps and ranks (nanochat logs rank 0's last micro-step): the same number
        # for any split of one batch into processes and micro-steps.
        mean_loss = mean_over_ranks(loss_sum / self.grad_accum).item()
        return mean_loss, lrm, (x, y, state)

    def run(self) -> dict:
        a, n = self.args, self.num_iterations
        batch = next(self.train_loader)
        self.step = self.start_step
        self.timing = {"steady_tokens": 0, "steady_seconds": 0.0, "seconds": 0.0}
        self.last_loss, interrupted = None, False
        with stop_on_signals() as stop:
            while True:
                step = self.step
                last_step = step == n
                # A signal stops the run first thing at a step boundary: save and leave, so the
                # checkpoint lands within one step of the request (all ranks agree on the step).
                interrupted = not last_step and any_rank(bool(stop), self.device)
                if interrupted:
                    print0(f"Interrupted by signal: saving a checkpoint at step {step} "
                           f"(resume with --resume-from-step {step})")
                    self.save(step)
                    break
                if a.eval_every > 0 and (last_step or step % a.eval_every == 0):
                    self.evaluate(step)
                if self.core_fn is not None and (last_step or (step > 0 and step % a.core_metric_every == 0)):
                    self.core_metric(step)
                if self.info.is_master and a.sample_every > 0 and (last_step or (step > 0 and step % a.sample_every == 0)):
                    self.sample()
                if last_step or (step > 0 and step != self.start_step and a.save_every > 0 and step % a.save_every == 0):
                    self.save(step)
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

    def log_step(self, step: int, loss: float, lrm: float, dt: float) -> None:
        self.last_loss = loss
        self.loop.smooth_train_loss = EMA_BETA * self.loop.smooth_train_loss + (1 - EMA_BETA) * loss
        debiased = self.loop.smooth_train_loss / (1 - EMA_BETA ** (step + 1))
        tok_per_sec = int(self.total_batch_size / dt)
        mfu = 100 * self.plan.flops_per_token * self.total_batch_size / dt / (self.peak_flops * self.info.world_size)
        self.timing["seconds"] += dt
        if step > UNTIMED_STEPS:
            self.loop.total_training_time += dt
            self.timing["steady_tokens"] += self.total_batch_size
            self.timing["steady_seconds"] += dt
        print0(f"step {step:05d}/{self.num_iterations:05d} ({100 * step / self.num_iterations:.2f}%) | "
               f"loss: {debiased:.6f} | lrm: {lrm:.2f} | dt: {dt * 1000:.2f}ms | tok/sec: {tok_per_sec:,} | "
               f"mfu: {mfu:.2f} | total time: {self.loop.total_training_time / 60:.2f}m")
        self._report({"step": step, "loss": debiased, "raw_loss": loss, "lrm": lrm, "dt": dt,
                      "tok_per_sec": tok_per_sec, "mfu": mfu, "total_time": self.loop.total_training_time})

    def summary(self, interrupted: bool) -> dict:
        t = self.timing
        steps_run = self.step - self.start_step
        if t["steady_seconds"] > 0:  # steady state, as nanochat's "total time" (first steps excluded)
            tokens_per_sec = t["steady_tokens"] / t["steady_seconds"]
        else:
            tokens_per_sec = steps_run * self.total_batch_size / t["seconds"] if t["seconds"] > 0 else 0.0
        mfu = 100 * self.plan.flops_per_token * tokens_per_sec / (self.peak_flops * self.info.world_size)
        final_loss = self.loop.smooth_train_loss / (1 - EMA_BETA ** self.step) if self.step > 0 else None
        min_bpb = self.loop.min_val_bpb
        print0(f"Training done: {steps_run} steps in {t['seconds']:.1f}s, {tokens_per_sec:,.0f} tok/s, MFU {mfu:.2f}%")
        if self.device.type == "cuda":
            print0(f"Peak memory: {torch.cuda.max_memory_allocated() / 2**20:.0f}MiB")
        return {
            "step": self.step, "num_iterations": self.num_iterations, "interrupted": interrupted,
            "val_bpb": self.val_bpb, "min_val_bpb": min_bpb if math.isfinite(min_bpb) else None,
            "final_loss": final_loss, "final_raw_loss": self.last_loss,
            "tokens_trained": self.step * self.total_batch_size, "tokens_per_sec": tokens_per_sec, "mfu": mfu,
            "peak_flops": self.peak_flops, "param_counts": dict(self.plan.param_counts),
            "scaling_params": self.plan.scaling_params, "training_seconds": t["seconds"],
            "total_training_time": self.loop.total_training_time, "flops_per_token": self.plan.flops_per_token,
            "total_flops": self.plan.flops_per_token * self.step * self.total_batch_size,
            "total_batch_size": self.total_batch_size, "device_batch_size": self.device_batch_size,
            "grad_accum_steps": self.grad_accum, "world_size": self.info.world_size,
            "horizon_source": self.plan.horizon_source, "model_tag": self.args.model_tag,
            "checkpoint_dir": str(self.ckpt_dir),
            "core_score": self.core_at[1] if self.core_at else None, "core_partial": self.core_at[2] if self.core_at else None,
        }
