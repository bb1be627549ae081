"""The step loop that base training, SFT and RL all run, and what every trainer shares around it.

`run_steps(trainer)` is the loop: at each step boundary a signal stops the run (checkpoint saved),
then the trainer's periodic work, its checkpoint cadence, one optimizer step and its log line. A
trainer is a `Trainer`: the set-up every one of them uses (device, tokenizer, tracker, loss
smoothing and step timing, optimizer state, checkpoint writing), plus the five pieces the loop asks
for (`is_last_step`, `periodic`, `save`, `train_step`, `log_step`) and its `summary`. Base training
and SFT train on token batches and share token_trainer.TokenTrainer; RL samples rollouts instead.
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import time

import torch

from nanochat_core.common import settings
from nanochat_core.common.collectives import any_rank
from nanochat_core.common.device import (compute_dtype, init_distributed, print0, resolve_device_type,
                                         shutdown_distributed)
from nanochat_core.model import checkpoint as ckpt
from nanochat_core.train.cpu_allocator import keep_freed_memory
from nanochat_core.train.stop_signal import stop_on_signals
from nanochat_core.train.tracking import check_tracking_available

EMA_BETA = 0.9  # smoothing of the logged train loss (debiased), as nanochat


@dataclasses.dataclass
class LoopState:
    """What the loop carries across a resume besides model, optimizer and data position."""
    min_val_bpb: float = float("inf")
    smooth_train_loss: float = 0.0
    total_training_time: float = 0.0


def run_steps(trainer: "Trainer") -> tuple[int, bool]:
    """Step from trainer.start_step until its last step or a signal; (the step reached, interrupted)."""
    step, save_every = trainer.start_step, trainer.args.save_every
    with stop_on_signals() as stop:
        while True:
            last_step = trainer.is_last_step(step)
            # A signal stops the run first thing at a step boundary: save and leave, so the
            # checkpoint lands within one step of the request (all ranks agree on the step).
            if not last_step and any_rank(bool(stop), trainer.device):
                print0(f"Interrupted by signal: saving a checkpoint at step {step} "
                       f"(resume with --resume-from-step {step})")
                trainer.save(step, finished=False)
                return step, True
            trainer.periodic(step, last_step)
            if last_step or (step > 0 and step != trainer.start_step and save_every > 0 and step % save_every == 0):
                trainer.save(step, finished=last_step)
            if last_step:
                return step, False
            t0 = time.perf_counter()
            loss, lrm = trainer.train_step(step)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            trainer.log_step(step, loss, lrm, time.perf_counter() - t0)
            step += 1


def nanochat_meta(step: int, val_bpb, model_config: dict, args, device_batch_size, max_seq_len: int,
                  total_batch_size, dataloader_state, loop: LoopState, peak_flops) -> dict:
    """A checkpoint's meta: nanochat's keys in its order; a trainer adds its own after them."""
    return {
        "step": step, "val_bpb": val_bpb, "model_config": model_config, "user_config": vars(args),
        "device_batch_size": device_batch_size, "max_seq_len": max_seq_len,
        "total_batch_size": total_batch_size, "dataloader_state_dict": dataloader_state,
        "loop_state": dataclasses.asdict(loop),
        "peak_flops": peak_flops,  # ours: the MFU basis, so the report card can recompute MFU
    }


class Trainer(abc.ABC):
    """What every trainer sets up and uses; a subclass builds its model, optimizer and data and
    supplies the loop's pieces. `UNTIMED_STEPS`: the first steps left out of total_training_time."""

    UNTIMED_STEPS = ckpt.UNTIMED_STEPS  # compilation and warm-up, as nanochat's base_train and chat_sft

    def __init__(self, args, device_type, info, on_metrics):
        from nanochat_core.tokenizer.bpe import get_tokenizer

        self.args, self.info, self.on_metrics = args, info, on_metrics
        self.device, self.dtype = info.device, compute_dtype(device_type)
        if self.device.type == "cpu":
            keep_freed_memory()  # a third of a CPU step went to re-faulting freed pages
        self.tokenizer = get_tokenizer()
        self.start_step, self.loop = 0, LoopState()  # a fresh run; see _continue_from
        self.last_loss = None  # the latest step's loss, unsmoothed
        # this process's steps: all of them, and the timed ones (after UNTIMED_STEPS)
        self.seconds, self.timed_steps, self.timed_seconds = 0.0, 0, 0.0

    @classmethod
    def train(cls, args, on_metrics=None) -> dict:
        """The one entry of every trainer: refuse unusable options, set up the processes, run, return
        the summary. `args` are validated already; on_metrics(m) is called on rank 0 (see _report)."""
        settings.load_dotenv_file()
        device_type = resolve_device_type(args.device_type)
        cls.refuse_early(args, device_type)
        info = init_distributed(device_type)
        try:
            return cls(args, device_type, info, on_metrics).run()
        finally:
            shutdown_distributed()

    @classmethod
    def refuse_early(cls, args, device_type: str) -> None:
        """Refuse unusable options before any work or any file is written."""
        check_tracking_available(args.run)

    # ---- the loop's pieces ----------------------------------------------------------------
    @abc.abstractmethod
    def is_last_step(self, step: int) -> bool: ...

    @abc.abstractmethod
    def periodic(self, step: int, last_step: bool) -> None:
        """Evaluations and samples due before `step`'s training (and at the end)."""

    @abc.abstractmethod
    def save(self, step: int, finished: bool) -> None: ...

    @abc.abstractmethod
    def train_step(self, step: int) -> tuple[float, float]:
        """One optimizer step; (its loss over all ranks, its LR multiplier)."""

    @abc.abstractmethod
    def log_step(self, step: int, loss: float, lrm: float, dt: float) -> None: ...

    @abc.abstractmethod
    def summary(self, step: int, interrupted: bool) -> dict: ...

    def run(self) -> dict:
        step, interrupted = run_steps(self)
        self.tracker.finish()
        return self.summary(step, interrupted)

    # ---- shared parts ---------------------------------------------------------------------
    def _continue_from(self, meta: dict) -> None:
        """Take the step and loop state of the checkpoint being resumed."""
        self.start_step = meta["step"]
        self.loop = LoopState(**meta["loop_state"])
        print0(f"Resuming from {ckpt.meta_path(self.ckpt_dir, self.start_step)}")

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

    @contextlib.contextmanager
    def _evaluating(self):
        """The original model in eval mode for the block, back in train mode after it."""
        self.orig_model.eval()
        yield self.orig_model
        self.orig_model.train()

    def _record_step(self, step: int, loss: float, dt: float) -> float:
        """Smooth the loss and count the step's time; return the smoothed loss, debiased (as logged)."""
        self.last_loss = loss
        self.loop.smooth_train_loss = EMA_BETA * self.loop.smooth_train_loss + (1 - EMA_BETA) * loss
        self.seconds += dt
        if step > self.UNTIMED_STEPS:
            self.loop.total_training_time += dt
            self.timed_steps += 1
            self.timed_seconds += dt
        return self.loop.smooth_train_loss / (1 - EMA_BETA ** (step + 1))

    def _final_loss(self, step: int) -> float | None:
        """The smoothed loss after `step` steps, debiased; None before any step."""
        return self.loop.smooth_train_loss / (1 - EMA_BETA ** step) if step > 0 else None

    def _write_checkpoint(self, step: int, meta: dict) -> None:
        ckpt.save_checkpoint(self.ckpt_dir, step, self.orig_model.state_dict(), self.optimizer.state_dict(),
                             meta, rank=self.info.rank)
        print0(f"Saved checkpoint {ckpt.meta_path(self.ckpt_dir, step)}")

    def _report(self, metrics: dict) -> None:
        if self.info.is_master:
            self.tracker.log(metrics)
            if self.on_metrics is not None:
                self.on_metrics(metrics)
