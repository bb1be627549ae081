"""Base pretraining (nanochat's base_train): one function that the CLI and the pipeline both call.

Everything follows from --depth through nanochat_core.model.sizing. The loop itself (checkpoints at
--save-every, at the end and on SIGINT/SIGTERM) is trainer_loop.py's, gradient accumulation token_trainer.py's;
this module adds what is base training's own: the plan, the pretraining loader and exact resume of
it, the LR / momentum / weight-decay schedules, periodic validation bpb, CORE and samples.
Log lines keep nanochat's format so existing log parsers keep working.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from nanochat_core.common.device import print0
from nanochat_core.model import checkpoint as ckpt
from nanochat_core.train.args import validate_args
from nanochat_core.train.core_hook import NOT_AVAILABLE, find_core_evaluator
from nanochat_core.train.fp8 import check_fp8, convert_fp8
from nanochat_core.train.schedules import base_lr_multiplier, muon_momentum, muon_weight_decay
from nanochat_core.train.token_trainer import TokenTrainer, step_line
from nanochat_core.train.tracking import make_tracker


def train_base(args, on_metrics: Callable[[dict], None] | None = None) -> dict:
    """Train a base model as `args` (see nanochat_core.train.args) say; return summary metrics.

    `on_metrics` is called on rank 0 after every step with {step, loss (smoothed, as logged),
    raw_loss, lrm, dt, tok_per_sec, mfu, total_time, progress} and after every validation with {step, val_bpb}.
    """
    return BaseTrainer.train(validate_args(args), on_metrics)


class BaseTrainer(TokenTrainer):
    @classmethod
    def refuse_early(cls, args, device_type: str) -> None:
        super().refuse_early(args, device_type)
        check_fp8(args.fp8, device_type)

    def __init__(self, args, device_type, info, on_metrics):
        super().__init__(args, device_type, info, on_metrics)
        self.plan = self._plan()
        self.num_iterations, self.total_batch_size = self.plan.num_iterations, self.plan.total_batch_size
        self.flops_per_token, self.param_counts = self.plan.flops_per_token, self.plan.param_counts
        self.model_config = dataclasses.asdict(self.plan.model_config)
        self.seq_len = args.max_seq_len
        self.orig_model = self._build_model()
        self.device_batch_size, self.grad_accum = self._batch_geometry()
        self.ckpt_dir = ckpt.checkpoint_dir(args.model_tag)
        model_state, optim_state, loader_state = self._resume_state()
        if model_state is not None:
            self.orig_model.load_state_dict(model_state, strict=True)
        if args.fp8:
            convert_fp8(self.orig_model)  # before the optimizer is built, so it holds the converted params
        self.optimizer = self._build_optimizer(optim_state)
        del model_state, optim_state
        self._compile_model()

        self.train_loader = self._loader("train", loader_state)
        self.loader_state = loader_state  # the position after the last batch the model trained on
        self.tracker = make_tracker(args.run, vars(args), info.is_master)
        self.core_fn = self._find_core_metric() if args.core_metric_every > 0 else None
        self.core_at: tuple[int, float | None, bool] | None = None  # (step, score, partial) of the latest CORE

    # ---- set-up -----------------------------------------------------------------------------
    def _plan(self):
        from nanochat_core.model.sizing import plan_training

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
        from nanochat_core.model.sizing import meta_model

        torch.manual_seed(42)  # the same initial weights on every rank and in every run
        model = meta_model(self.plan.model_config)
        model.to_empty_on(self.device)
        model.init_weights()
        return model

    def _resume_state(self):
        """(model state, optimizer state, loader state) of --resume-from-step, or Nones for a fresh run."""
        a = self.args
        if a.resume_from_step < 0:
            return None, None, None
        model_state, optim_state, meta = ckpt.load_checkpoint(
            self.ckpt_dir, a.resume_from_step, device=self.device, load_optimizer=True, rank=self.info.rank)
        # Resuming with another geometry would silently change the data order or the model.
        expected = {"total_batch_size": self.total_batch_size, "max_seq_len": self.seq_len,
                    "model_config": self.model_config, "world_size": self.info.world_size}
        for key, value in expected.items():
            if meta.get(key, value) != value:
                raise ValueError(f"--resume-from-step {a.resume_from_step}: {ckpt.meta_path(self.ckpt_dir, meta['step'])} "
                                 f"has {key}={meta[key]}, this run has {value}; resume with the original run's "
                                 "flags and number of processes")
        self._continue_from(meta)
        return model_state, optim_state, meta["dataloader_state_dict"]

    def _build_optimizer(self, optim_state):
        p, frac = self.plan, self.args.init_lr_frac  # --init-lr-frac scales every peak LR
        optimizer = self.orig_model.setup_optimizer(
            unembedding_lr=p.unembedding_lr * frac, embedding_lr=p.embedding_lr * frac,
            matrix_lr=p.matrix_lr * frac, weight_decay=p.weight_decay, scalar_lr=p.scalar_lr * frac,
            distributed=self.info.world_size > 1)
        if optim_state is not None:
            self._load_optimizer_state(optimizer, optim_state)
        return optimizer

    def _loader(self, split: str, state=None):
        from nanochat_core.data.loader import pretraining_loader

        return pretraining_loader(self.tokenizer, self.device_batch_size, self.seq_len, split, device=self.device,
                                  resume_state_dict=state, rank=self.info.rank, world_size=self.info.world_size)

    def _val_batches(self):
        """This rank's share of one process's validation batches: the same val_bpb for any number of
        ranks, and a validation shard with fewer row groups than ranks still serves them all."""
        from nanochat_core.data.loader import evaluation_loader

        return evaluation_loader(self.tokenizer, self.device_batch_size, self.seq_len, "val", device=self.device,
                                 rank=self.info.rank, world_size=self.info.world_size)

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
        self._apply_schedule(lrm, muon_momentum(it), muon_weight_decay(it, self.num_iterations, self.plan.weight_decay))
        return lrm

    def is_last_step(self, step: int) -> bool:
        return step == self.num_iterations

    def periodic(self, step: int, last_step: bool) -> None:
        a = self.args
        if a.eval_every > 0 and (last_step or step % a.eval_every == 0):
            self.evaluate(step)
        if self.core_fn is not None and (last_step or (step > 0 and step % a.core_metric_every == 0)):
            self.core_metric(step)
        if self.info.is_master and a.sample_every > 0 and (last_step or (step > 0 and step % a.sample_every == 0)):
            self.sample()

    def evaluate(self, step: int) -> None:
        from nanochat_core.evaluation.bpb import evaluate_bpb

        with self._evaluating() as model:
            val_bpb = evaluate_bpb(model, self._val_batches(), self._eval_steps(), self.token_bytes)
        self._record_val_bpb(step, val_bpb)

    def core_metric(self, step: int) -> None:
        from nanochat_core.evaluation.core import format_core

        with self._evaluating() as model:
            # per-task lines only from rank 0; the Step line below is the one to grep
            result = self.core_fn(model, self.tokenizer, self.device, max_per_task=self.args.core_metric_max_per_task,
                                  batch_size=self.device_batch_size, context=self.seq_len, log=print0)
        self.core_at = (step, result["core_metric"], result["partial"])
        print0(f"Step {step:05d} | CORE metric: {format_core(result)}")
        self._report({"step": step, "core_metric": result["core_metric"]})

    def sample(self) -> None:
        from nanochat_core.train.samples import print_samples

        with self._evaluating() as model:
            print_samples(model, self.tokenizer)

    def save(self, step: int, finished: bool) -> None:
        meta = self._checkpoint_meta(step, self.loader_state) | {
            # ours, beyond nanochat's keys
            "num_iterations": self.num_iterations, "world_size": self.info.world_size,
            "flops_per_token": self.flops_per_token, "tokens_trained": step * self.total_batch_size,
            "horizon_source": self.plan.horizon_source, "throughput": self.throughput(step),
        }
        if self.core_at is not None and self.core_at[0] == step:  # only a score of these very weights
            meta["core_score"], meta["core_partial"] = self.core_at[1:]
        self._write_checkpoint(step, meta)

    # ---- the loop ---------------------------------------------------------------------------
    def log_step(self, step: int, loss: float, lrm: float, dt: float) -> None:
        metrics, n = self._step_metrics(step, loss, lrm, dt), self.num_iterations
        print0(step_line(f"step {step:05d}/{n:05d} ({100 * step / n:.2f}%)", metrics))
        self._report(metrics | {"progress": (step + 1) / n})  # as chat_sft's: the fraction done

    def summary(self, step: int, interrupted: bool) -> dict:
        return self._summary(step, interrupted, self.num_iterations, self.args.model_tag) | {
            "scaling_params": self.plan.scaling_params, "horizon_source": self.plan.horizon_source,
            "core_score": self.core_at[1] if self.core_at else None, "core_partial": self.core_at[2] if self.core_at else None,
        }
