"""Reinforcement learning on a task with checkable answers (nanochat's chat_rl): one function the CLI and the pipeline call.

Each step, every process takes its share of `--examples-per-step` training questions (rank-strided:
question positions step*E + rank, + world, ...), samples `--num-samples` completions of each from the
current model with the calculator tool, rewards them with the task's answer check and trains on
them with the policy-gradient loss of rollouts.py (advantage = reward minus the question's mean;
token-level normalization over sampled tokens; each forward's loss divided by the forwards of its
question and the questions of the process, then the gradients are averaged over processes). The LR
multiplier falls linearly from 1 to 0 over the run; `--init-lr-frac` scales every group's LR once.
Every `--eval-every` steps and at the end it prints and records pass@1..k (k = --device-batch-size)
on the first `--eval-examples` test questions, and every step the mean reward and mean sequence
length (prompt + completion) of its rollouts.

The step loop is every trainer's (trainer_loop.run_steps): checkpoints at --save-every, at the end
and on SIGINT/SIGTERM, under chatrl_checkpoints/<tag>/ in the same layout; a resume continues exactly,
since sampling seeds depend on (step, question, batch) only and the optimizer state is saved per rank.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from nanochat_core.common import settings
from nanochat_core.common.collectives import barrier, mean_over_ranks, sum_over_ranks
from nanochat_core.common.device import print0
from nanochat_core.evaluation.pass_at_k import format_pass_at_k, pass_at_k_counts
from nanochat_core.model import checkpoint as ckpt
from nanochat_core.train.rl_args import make_rl_args, parse_rl_args, validate_rl_args
from nanochat_core.train.rollouts import advantages, policy_gradient_loss, sample_group, training_batch
from nanochat_core.train.start_checkpoints import ParentCheckpoint, load_own_checkpoint, train_mode_model
from nanochat_core.train.tracking import make_tracker
from nanochat_core.train.trainer_loop import Trainer, nanochat_meta

__all__ = ["train_rl", "make_rl_args", "parse_rl_args", "load_rl_tasks"]


def train_rl(args, on_metrics: Callable[[dict], None] | None = None) -> dict:
    """RL of an SFT checkpoint as `args` (see rl_args) say; return summary metrics.

    `on_metrics` is called on rank 0 after every step with {step, loss (smoothed), raw_loss, lrm, dt,
    mean_reward, mean_sequence_length, rollouts_per_sec, progress} and after every evaluation with {step, pass@1, ...}.
    """
    return RLTrainer.train(validate_rl_args(args), on_metrics)


def load_rl_tasks(name: str, task_data=None, max_train_questions: int = -1):
    """(training task, test task) of `--task`; the training task cut to its first max_train_questions when > 0."""
    stop = max_train_questions if max_train_questions > 0 else None
    if name == "arithmetic":
        from nanochat_core.tasks.arithmetic import Arithmetic

        return Arithmetic("train", stop=stop), Arithmetic("test")
    from nanochat_core.tasks.gsm8k import GSM8K

    return GSM8K("train", task_data, stop=stop), GSM8K("test", task_data)


def describe_task(task) -> dict:
    """What a checkpoint records about a task (the report card shows it; a resume checks it)."""
    about = task.describe() if hasattr(task, "describe") else \
        {"name": task.name, "files": [str(f) for f in getattr(task, "files", [])]}
    return about | {"questions": len(task)}


class RLTrainer(Trainer):
    UNTIMED_STEPS = -1  # nanochat's chat_rl times every step: no compilation to leave out

    def __init__(self, args, device_type, info, on_metrics):
        super().__init__(args, device_type, info, on_metrics)
        a, world = args, info.world_size
        if a.examples_per_step % world:
            raise ValueError(f"--examples-per-step {a.examples_per_step} must be divisible by the number of "
                             f"processes ({world})")
        self.examples_per_rank = a.examples_per_step // world
        sft = ParentCheckpoint.find(a.model_tag, a.model_step, settings.chatsft_checkpoints_dir())
        self.sft_tag, self.sft_step = sft.tag, sft.step
        self.ckpt_dir = ckpt.checkpoint_dir(self.sft_tag, settings.chatrl_checkpoints_dir())
        self.train_task, self.val_task = self._load_tasks()
        self.task_meta = {"train": describe_task(self.train_task), "test": describe_task(self.val_task)}
        n = len(self.train_task)
        self.num_iterations = a.num_iterations if a.num_iterations > 0 else (n // a.examples_per_step) * a.num_epochs
        if self.num_iterations < 1:
            raise ValueError(f"{n} training question(s) make no step of --examples-per-step {a.examples_per_step}: "
                             "pass --num-iterations or fewer examples per step")
        print0(f"RL task {a.task}: {n:,} training questions, {len(self.val_task):,} test questions; "
               f"{self.num_iterations} steps of {a.examples_per_step} questions x {a.num_samples} samples")

        self.history = {"rewards": [], "pass_at_k": []}  # the curves, carried across a resume
        resume = self._resume_state()
        if resume is None:
            model_state, optim_state, meta = sft.load(self.device)
            print0(f"SFT model: {sft.meta_path}")
        else:
            model_state, optim_state, meta = resume
        self.model_config = meta["model_config"]
        # the chat context the SFT run trained on (prompts are cropped to it), kept in RL's meta for chat_eval
        self.seq_len = int(meta.get("max_seq_len") or self.model_config["sequence_len"])
        # rows of varying length: no torch.compile, no token batch, no MFU
        self.orig_model = train_mode_model(model_state, meta, self.device)
        del model_state
        self.optimizer = self._build_optimizer(optim_state)
        del optim_state
        self.pad_id = self.tokenizer.encode_special("<|assistant_end|>")
        self.tracker = make_tracker(a.run, vars(a), info.is_master, project="nanochat-rl")
        self.rollouts_done, self.rollout_seconds = 0, 0.0

    # ---- set-up -----------------------------------------------------------------------------
    def _load_tasks(self):
        """Rank 0 loads first (one download into the task-data cache), the others then read the cache."""
        from nanochat_core.tasks.task_data import task_data_root

        root = task_data_root(self.args.task_data)
        a = self.args
        tasks = load_rl_tasks(a.task, root, a.max_train_questions) if self.info.is_master else None
        barrier()
        return tasks or load_rl_tasks(a.task, root, a.max_train_questions)

    def _identity(self) -> dict:
        a = self.args
        return {"sft_model_tag": self.sft_tag, "sft_step": self.sft_step, "task": self.task_meta,
                "num_iterations": self.num_iterations, "examples_per_step": a.examples_per_step,
                "num_samples": a.num_samples, "world_size": self.info.world_size}

    def _resume_state(self):
        if self.args.resume_from_step < 0:
            return None
        model_state, optim_state, meta = load_own_checkpoint(self.ckpt_dir, self.args.resume_from_step, self.device,
                                                             self.info.rank, self._identity(), "task")
        self._continue_from(meta)
        saved = meta["rl_history"]
        # the saved step's evaluation ran before its save: keep it, the loop then does not repeat it
        self.history = {"rewards": [r for r in saved["rewards"] if r["step"] < self.start_step],
                        "pass_at_k": [p for p in saved["pass_at_k"] if p["step"] <= self.start_step]}
        return model_state, optim_state, meta

    def _build_optimizer(self, optim_state):
        a = self.args
        optimizer = self.orig_model.setup_optimizer(unembedding_lr=a.unembedding_lr, embedding_lr=a.embedding_lr,
                                                    matrix_lr=a.matrix_lr, weight_decay=a.weight_decay,
                                                    distributed=self.info.world_size > 1)
        for group in optimizer.param_groups:  # nanochat: --init-lr-frac scales every group once
            group["lr"] *= a.init_lr_frac
            group["initial_lr"] = group["lr"]
        self.muon_momentum = next(g["momentum"] for g in optimizer.param_groups if g["kind"] == "muon")
        if optim_state is not None:
            self._load_optimizer_state(optimizer, optim_state)
        return optimizer

    def _questions(self, step: int) -> list[int]:
        """This rank's training questions of `step`: positions step*E + rank + j*world."""
        a, n, world = self.args, len(self.train_task), self.info.world_size
        first = step * a.examples_per_step + self.info.rank
        return [(first + j * world) % n for j in range(self.examples_per_rank)]

    # ---- the trainer's pieces ---------------------------------------------------------------
    def schedule(self, step: int) -> float:
        lrm = 1.0 - step / self.num_iterations
        self._apply_schedule(lrm, self.muon_momentum)
        return lrm

    def is_last_step(self, step: int) -> bool:
        return step >= self.num_iterations

    def periodic(self, step: int, last_step: bool) -> None:
        a = self.args
        evaluated = {p["step"] for p in self.history["pass_at_k"]}
        if a.eval_every > 0 and (last_step or step % a.eval_every == 0) and step not in evaluated:
            self.evaluate(step)

    def evaluate(self, step: int) -> None:
        a, rank, world = self.args, self.info.rank, self.info.world_size
        n = min(a.eval_examples, len(self.val_task))
        if n == 0:
            print0(f"Step {step} | pass@k is skipped: the test split has no questions")
            return
        with self._evaluating() as model:
            counts = pass_at_k_counts(model, self.tokenizer, self.val_task, range(rank, n, world), a.device_batch_size,
                                      a.temperature, a.top_k, a.max_new_tokens, self.seq_len)
        rates = [c / n for c in sum_over_ranks(counts, self.device)]
        print0(format_pass_at_k(step, rates))
        self.history["pass_at_k"].append({"step": step, "pass_at_k": rates, "problems": n})
        self._report({"step": step, **{f"pass@{j + 1}": r for j, r in enumerate(rates)}})

    def train_step(self, step: int) -> tuple[float, float]:
        a = self.args
        lrm = self.schedule(step)
        t0 = time.perf_counter()
        with self._evaluating() as model:
            groups = [sample_group(model, self.tokenizer, self.train_task, q, step, a.num_samples,
                                   a.device_batch_size, a.max_new_tokens, a.temperature, a.top_k, self.seq_len)
                      for q in self._questions(step)]
        self.rollout_seconds += time.perf_counter() - t0
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        for group in groups:
            advantage = advantages(torch.tensor(group.rewards, device=self.device))
            starts = range(0, len(group.sequences), a.device_batch_size)
            for b0 in starts:
                b1 = b0 + a.device_batch_size
                inputs, targets = training_batch(group.sequences[b0:b1], group.sampled[b0:b1], self.pad_id, self.device)
                token_logp = -self.orig_model(inputs, targets, loss_reduction="none")
                loss = policy_gradient_loss(token_logp, targets, advantage[b0:b1]) / (len(starts) * self.examples_per_rank)
                loss.backward()
                loss_sum += loss.detach()
        self.optimizer.step()
        self.orig_model.zero_grad(set_to_none=True)
        rewards = [r for g in groups for r in g.rewards]
        lengths = [len(s) for g in groups for s in g.sequences]
        # every rank has as many rollouts, so the mean of the ranks' means is the mean over all rollouts
        stats = mean_over_ranks(torch.tensor([loss_sum.item(), sum(rewards) / len(rewards), sum(lengths) / len(lengths)],
                                             dtype=torch.float64, device=self.device)).tolist()
        self.step_stats = {"mean_reward": stats[1], "mean_sequence_length": stats[2]}
        self.rollouts_done += a.examples_per_step * a.num_samples
        return stats[0], lrm

    def log_step(self, step: int, loss: float, lrm: float, dt: float) -> None:
        a = self.args
        debiased = self._record_step(step, loss, dt)
        rollouts_per_sec = a.examples_per_step * a.num_samples / dt
        s = self.step_stats
        self.history["rewards"].append({"step": step, **s, "loss": loss})
        print0(f"Step {step}/{self.num_iterations} | Average reward: {s['mean_reward']:.4f} | Average sequence length: "
               f"{s['mean_sequence_length']:.2f} | loss: {loss:.6f} | lrm: {lrm:.2f} | dt: {dt * 1000:.2f}ms | "
               f"rollouts/sec: {rollouts_per_sec:.2f} | total time: {self.loop.total_training_time / 60:.2f}m")
        self._report({"step": step, "loss": debiased, "raw_loss": loss, "lrm": lrm, "dt": dt, **s,
                      "rollouts_per_sec": rollouts_per_sec, "progress": (step + 1) / self.num_iterations})

    def save(self, step: int, finished: bool) -> None:
        position = {"next_question": step * self.args.examples_per_step, "train_questions": len(self.train_task)}
        # nanochat's keys: no validation bpb, and rollouts of varying length have no token batch nor MFU basis
        meta = nanochat_meta(step, None, self.model_config, self.args, self.args.device_batch_size, self.seq_len,
                             None, position, self.loop, None) | self._identity() | {
            "finished": finished, "rl_history": self.history, "task_name": self.args.task,
        }
        self._write_checkpoint(step, meta)

    def summary(self, step: int, interrupted: bool) -> dict:
        steps_run = step - self.start_step
        seconds = self.seconds
        rate = self.rollouts_done / seconds if seconds > 0 else None
        rewards, evals = self.history["rewards"], self.history["pass_at_k"]
        print0(f"RL done: {steps_run} steps in {seconds:.1f}s"
               + (f", {rate:.2f} rollouts/s ({self.rollout_seconds:.1f}s of it sampling)" if rate else ""))
        return {
            "step": step, "num_iterations": self.num_iterations, "interrupted": interrupted,
            "final_loss": self._final_loss(step), "final_raw_loss": self.last_loss,
            "first_mean_reward": rewards[0]["mean_reward"] if rewards else None,
            "final_mean_reward": rewards[-1]["mean_reward"] if rewards else None,
            "pass_at_k_before": evals[0] if evals else None,
            "pass_at_k_after": evals[-1] if len(evals) > 1 else None,
            "history": self.history, "rollouts_per_sec": rate, "training_seconds": seconds,
            "total_training_time": self.loop.total_training_time, "task": self.args.task,
            "sft_model_tag": self.sft_tag, "sft_step": self.sft_step, "world_size": self.info.world_size,
            "model_tag": self.sft_tag, "checkpoint_dir": str(self.ckpt_dir),
        }
