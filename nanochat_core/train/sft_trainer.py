"""Supervised fine-tuning (nanochat's chat_sft): one function that the CLI and the pipeline both call.

The base checkpoint gives the model, the defaults of every batch and LR flag left at None (from its
meta) and, with --load-optimizer 1, the optimizer's momentum buffers; the LRs are then reset to
this run's. The loop is base training's (trainer_loop.py, token_trainer.py): gradient accumulation, periodic val
bpb and ChatCORE, checkpoints at --save-every, at the end and on SIGINT/SIGTERM, exact resume, the
same log lines plus the epoch. The LR multiplier follows training progress (sft_lr_multiplier):
step / --num-iterations, or with --num-iterations -1 the share of the mixture consumed so far,
the run ending once one epoch's worth of conversations has been consumed.

LR flags mean what base_train's mean: the LR at the reference batch of 2^19 tokens, scaled by
sqrt(total batch / 2^19). So an inherited LR at an inherited batch is exactly the base run's peak
LR (times --init-lr-frac). Weight decay is zero: base training decays it to zero by its end.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from nanochat_core.common import settings
from nanochat_core.data.sft_loader import initial_state
from nanochat_core.common.device import print0
from nanochat_core.model import checkpoint as ckpt
from nanochat_core.common.collectives import barrier, gather_from_ranks, sum_over_ranks
from nanochat_core.train.schedules import sft_lr_multiplier, sft_muon_momentum
from nanochat_core.train.sft_args import IDENTITY_FILE, INHERITED_FLAGS, make_sft_args, parse_sft_args, validate_sft_args
from nanochat_core.train.start_checkpoints import ParentCheckpoint, load_own_checkpoint, train_mode_model
from nanochat_core.train.token_trainer import TokenTrainer, step_line
from nanochat_core.train.tracking import make_tracker
from nanochat_core.train.core_hook import is_absent

__all__ = ["train_sft", "make_sft_args", "parse_sft_args"]

MIXTURE_IDENTITY = ("seed", "train_conversations", "sources", "val_conversations", "val_sources")
CHATCORE_NOT_AVAILABLE = "ChatCORE is not available (nanochat_core.evaluation.chatcore is not installed)"


def train_sft(args, on_metrics: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune a base checkpoint as `args` (see nanochat_core.train.sft_args) say; return summary metrics.

    `on_metrics` is called on rank 0 after every step with {step, loss (smoothed, as logged), raw_loss,
    lrm, dt, tok_per_sec, mfu, total_time, progress, epoch}, after every validation with {step, val_bpb}
    and after every ChatCORE with {step, chatcore}.
    """
    return SFTTrainer.train(validate_sft_args(args), on_metrics)


class SFTTrainer(TokenTrainer):
    def __init__(self, args, device_type, info, on_metrics):
        super().__init__(args, device_type, info, on_metrics)
        base = ParentCheckpoint.find(args.model_tag, args.model_step)
        self.base_tag, self.base_step = base.tag, base.step
        base_meta = base.meta()
        print0(f"Base model: {base.meta_path}")
        self._inherit(base_meta)
        if args.load_optimizer and args.resume_from_step < 0:
            self._check_optimizer_sharding(base_meta.get("world_size"))
        self.output_tag = args.output_tag or self.base_tag
        self.ckpt_dir = ckpt.checkpoint_dir(self.output_tag, settings.chatsft_checkpoints_dir())
        self.data = self._load_data()

        self.consumed, self.too_long = 0, 0  # over all ranks, after the last batch trained on
        resume = self._resume_state()
        if resume is not None:
            model_state, optim_state, meta, loader_state = resume
        elif args.load_optimizer:
            model_state, optim_state, meta = self._load_base_with_optimizer(base)
            loader_state = None
        else:
            model_state, _, meta = base.load(self.device)
            optim_state, loader_state = None, None
        self.model_config = meta["model_config"]
        self.orig_model = train_mode_model(model_state, meta, self.device)
        del model_state
        self.param_counts = self.orig_model.num_scaling_params()
        self.flops_per_token = self.orig_model.estimate_flops()
        self.device_batch_size, self.grad_accum = self._batch_geometry()
        self.optimizer = self._build_optimizer(optim_state, warm_start=resume is None and bool(args.load_optimizer))
        del optim_state
        self._compile_model()

        self.train_loader = self._loader(self.data.train, loader_state)
        # this rank's position after the last batch trained on
        self.loader_state = loader_state or initial_state(info.rank, info.world_size)
        self.val_steps = self._val_steps()
        self.val_too_long: int | None = None  # conversations validation left out, once it has run
        self.tracker = make_tracker(args.run, vars(args), info.is_master, project="nanochat-sft")
        self.chatcore_fn = self._find_chatcore() if args.chatcore_every > 0 else None
        self.chatcore_at: tuple[int, float | None, bool] | None = None

    # ---- set-up -----------------------------------------------------------------------------
    def _inherit(self, base_meta: dict) -> None:
        """Fill the None-valued batch and LR flags from the base checkpoint; say which were inherited."""
        from nanochat_core.model.sizing import B_REF
        from nanochat_core.train.args import build_parser, flag_name

        a = self.args
        base_flags = {**vars(build_parser().parse_args([])), **(base_meta.get("user_config") or {})}
        from_meta = {"max_seq_len": base_meta.get("max_seq_len"), "device_batch_size": base_meta.get("device_batch_size"),
                     "total_batch_size": base_meta.get("total_batch_size")}
        for name in INHERITED_FLAGS:
            theirs, flag = from_meta[name] if name in from_meta else base_flags[name], flag_name(name)
            if getattr(a, name) is None:
                if theirs is None:
                    raise ValueError(f"the base checkpoint's meta has no {name}: pass {flag}")
                setattr(a, name, theirs)
                print0(f"Inherited {name}={theirs} from the base checkpoint")
            elif theirs is not None and getattr(a, name) != theirs:
                print0(f"{flag} {getattr(a, name)} overrides the base checkpoint's {theirs}")
        self.seq_len, self.total_batch_size = int(a.max_seq_len), int(a.total_batch_size)
        self.num_iterations = a.num_iterations  # -1: one epoch of the mixture
        scale = (self.total_batch_size / B_REF) ** 0.5 * a.init_lr_frac
        self.lrs = {"embedding_lr": a.embedding_lr * scale, "unembedding_lr": a.unembedding_lr * scale,
                    "matrix_lr": a.matrix_lr * scale, "scalar_lr": float(base_flags["scalar_lr"]) * scale}
        print0("Peak LRs: " + ", ".join(f"{k} {v:.6g}" for k, v in self.lrs.items()) +
               f" (flag x sqrt({self.total_batch_size} / {B_REF}) x --init-lr-frac {a.init_lr_frac}; the optimizer "
               "further scales the AdamW groups by (model_dim / 768)^-0.5, as in base training)")

    def _load_data(self):
        """Rank 0 loads first (one download into the task-data cache), the others then read the cache."""
        from nanochat_core.tasks.task_data import task_data_root
        from nanochat_core.train.sft_mixture import build_sft_data

        a = self.args
        self.task_data = task_data_root(a.task_data)
        identity = Path(a.identity) if a.identity else settings.base_dir() / IDENTITY_FILE
        a.identity = str(identity)  # recorded in user_config as the file actually used

        def build():
            return build_sft_data(self.task_data, identity, a.jsonl, a.mmlu_epochs, a.gsm8k_epochs, a.seed,
                                  a.arithmetic_epochs)

        data = build() if self.info.is_master else None
        barrier()  # rank 0 has read (and downloaded) the task data; the others read the cache
        if data is None:
            data = build()
        for line in data.report_lines():
            print0(line)
        return data

    def _check_optimizer_sharding(self, base_world_size: int | None) -> None:
        """Before any data is read: each rank warm-starts from the shard its rank saved."""
        world = self.info.world_size
        if base_world_size is not None and base_world_size != world:
            raise ValueError(f"--load-optimizer 1: the base checkpoint's optimizer state is sharded over "
                             f"{base_world_size} process(es), this run has {world}; run SFT with "
                             f"{base_world_size} process(es) or pass --load-optimizer 0")

    def _load_base_with_optimizer(self, base: ParentCheckpoint):
        try:
            return base.load(self.device, load_optimizer=True, rank=self.info.rank)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e}; or pass --load-optimizer 0 to start SFT with a fresh optimizer") from None

    def _resume_state(self):
        """(model state, optimizer state, meta, this rank's loader state) of --resume-from-step, or None."""
        a = self.args
        if a.resume_from_step < 0:
            return None
        expected = {"total_batch_size": self.total_batch_size, "max_seq_len": self.seq_len,
                    "world_size": self.info.world_size, "base_model_tag": self.base_tag, "base_step": self.base_step}
        # the mixture's make-up (not the wording of why a source was left out)
        expected |= {f"mixture.{k}": v for k, v in self.data.meta().items() if k in MIXTURE_IDENTITY}
        model_state, optim_state, meta = load_own_checkpoint(self.ckpt_dir, a.resume_from_step, self.device,
                                                             self.info.rank, expected, "data")
        self._continue_from(meta)
        ranks = meta["dataloader_state_dict"]["ranks"]
        self.consumed = sum(s["consumed"] for s in ranks)
        self.too_long = sum(s["too_long"] for s in ranks)
        return model_state, optim_state, meta, ranks[self.info.rank]

    def _build_optimizer(self, optim_state, warm_start: bool):
        optimizer = self.orig_model.setup_optimizer(**self.lrs, weight_decay=0.0,
                                                    distributed=self.info.world_size > 1)
        if optim_state is None:
            return optimizer
        self._load_optimizer_state(optimizer, optim_state)  # a base run's LRs, momentum, decay are not ours
        if warm_start:
            n = sum(len(s) > 0 for s in optimizer.state.values())
            total = sum(len(g["params"]) for g in optimizer.param_groups)
            # A checkpoint from a run sharded over more processes (e.g. nanochat's, which records no world
            # size) holds only this rank's share: say so rather than imply a full warm start.
            partial = "" if n == total else " (the rest start fresh: was the base run sharded over more processes?)"
            print0(f"Warm start: optimizer state of {n} of {total} parameter tensors loaded from the base "
                   f"checkpoint{partial}; LRs reset to this run's")
        return optimizer

    def _decide_compile(self) -> tuple[bool, str]:
        if self.args.compile == "auto" and self.device.type != "cuda" and self.epoch_mode:
            return False, "auto: on CPU only for a fixed --num-iterations (an epoch's length is not known up front)"
        return super()._decide_compile()

    def _loader(self, conversations, state=None):
        from nanochat_core.data.sft_loader import sft_loader

        return sft_loader(self.tokenizer, conversations, self.device_batch_size, self.seq_len, device=self.device,
                          resume_state_dict=state, rank=self.info.rank, world_size=self.info.world_size)

    def _val_steps(self) -> int:
        a, val = self.args, self.data.val
        if a.eval_every <= 0:
            return 0
        if val is None or len(val) < self.info.world_size:
            print0(f"val bpb is skipped: {len(val) if val is not None else 0} validation conversation(s) for "
                   f"{self.info.world_size} process(es)")
            return 0
        return self._eval_steps()

    def _find_chatcore(self):
        try:
            from nanochat_core.evaluation.chatcore import chatcore
        except ModuleNotFoundError as e:  # only the module's own absence; an error inside it propagates
            if not is_absent(e, "nanochat_core.evaluation.chatcore"):
                raise
            print0(f"{CHATCORE_NOT_AVAILABLE}: --chatcore-every {self.args.chatcore_every} is ignored for this run")
            return None
        return chatcore

    # ---- progress ---------------------------------------------------------------------------
    @property
    def epoch_mode(self) -> bool:
        return self.args.num_iterations < 0

    def progress(self, step: int) -> float:
        """Share of training done before `step`: of the steps, or of one epoch of the mixture."""
        if self.epoch_mode:
            return min(1.0, self.consumed / len(self.data.train))
        return step / self.args.num_iterations if self.args.num_iterations > 0 else 1.0

    def is_last_step(self, step: int) -> bool:
        if self.epoch_mode:
            return self.consumed >= len(self.data.train)
        return step >= self.args.num_iterations

    # ---- periodic work ----------------------------------------------------------------------
    def schedule(self, step: int) -> float:
        a = self.args
        lrm = sft_lr_multiplier(self.progress(step), a.warmup_ratio, a.warmdown_ratio, a.final_lr_frac)
        self._apply_schedule(lrm, sft_muon_momentum(step))
        return lrm

    def periodic(self, step: int, last_step: bool) -> None:
        a = self.args
        if self.val_steps and (last_step or step % a.eval_every == 0):
            self.evaluate(step)
        if self.chatcore_fn is not None and (last_step or (step > 0 and step % a.chatcore_every == 0)):
            self.chatcore(step)

    def evaluate(self, step: int) -> None:
        from nanochat_core.evaluation.bpb import evaluate_bpb

        last_state = {}

        def batches():
            for x, y, state in self._loader(self.data.val):
                last_state.update(state)
                yield x, y

        with self._evaluating() as model:
            val_bpb = evaluate_bpb(model, batches(), self.val_steps, self.token_bytes)
        too_long, = sum_over_ranks([last_state["too_long"]], self.device)
        if self.val_too_long is None and too_long:  # the same each time: every evaluation reads the same rows
            print0(f"Validation bpb leaves out {too_long:,} conversation(s) longer than a row of "
                   f"{self.seq_len + 1} tokens")
        self.val_too_long = too_long
        self._record_val_bpb(step, val_bpb)

    def chatcore(self, step: int) -> None:
        a = self.args
        with self._evaluating() as model:
            result = self.chatcore_fn(model, self.tokenizer, self.device, task_data=self.task_data,
                                      max_cat=a.chatcore_max_cat, max_sample=a.chatcore_max_sample, log=print0,
                                      context=self.seq_len)
        score, partial = result.get("chatcore"), bool(result.get("partial"))
        self.chatcore_at = (step, score, partial)
        shown = "n/a" if score is None else f"{score:.4f}"
        print0(f"Step {step:05d} | ChatCORE: {shown}{' (partial: some tasks were left out)' if partial else ''}")
        self._report({"step": step, "chatcore": score})

    def save(self, step: int, finished: bool) -> None:
        ranks = gather_from_ranks(self.loader_state)  # every rank's position, for an exact resume
        meta = self._checkpoint_meta(step, {"world_size": self.info.world_size, "ranks": ranks}) | {
            # ours, beyond nanochat's keys
            "base_model_tag": self.base_tag, "base_step": self.base_step, "mixture": self.data.meta(),
            "conversations_too_long": self.too_long, "val_conversations_too_long": self.val_too_long,
            "epoch_progress": self.consumed / len(self.data.train),
            "num_iterations": self.args.num_iterations if not self.epoch_mode else (step if finished else -1),
            "finished": finished, "world_size": self.info.world_size, "flops_per_token": self.flops_per_token,
            "tokens_trained": step * self.total_batch_size, "throughput": self.throughput(step),
        }
        if self.chatcore_at is not None and self.chatcore_at[0] == step:  # only a score of these very weights
            meta["chatcore"], meta["chatcore_partial"] = self.chatcore_at[1:]
        self._write_checkpoint(step, meta)

    # ---- the loop ---------------------------------------------------------------------------
    def train_step(self, step: int) -> tuple[float, float]:
        loss, lrm = super().train_step(step)
        # Conversations consumed by every rank decide the epoch's end: all ranks stop at the same step.
        self.consumed, self.too_long = sum_over_ranks(
            [self.loader_state["consumed"], self.loader_state["too_long"]], self.device)
        return loss, lrm

    def log_step(self, step: int, loss: float, lrm: float, dt: float) -> None:
        metrics = self._step_metrics(step, loss, lrm, dt)
        progress = self.progress(step + 1)
        where = f"step {step:05d} ({100 * progress:.2f}%)" if self.epoch_mode else \
            f"step {step:05d}/{self.args.num_iterations:05d} ({100 * step / self.args.num_iterations:.2f}%)"
        epoch = 1 + max(self.consumed - 1, 0) // len(self.data.train)  # the pass its latest conversation is in
        print0(step_line(where, metrics, f"epoch: {epoch} | "))
        self._report(metrics | {"progress": progress, "epoch": epoch})

    def summary(self, step: int, interrupted: bool) -> dict:
        num_iterations = self.args.num_iterations if not self.epoch_mode else step
        note = f"; {self.too_long:,} conversation(s) longer than a row of {self.seq_len + 1} tokens were left out"
        mixture = self.data.meta()
        return self._summary(step, interrupted, num_iterations, self.output_tag, note) | {
            "base_model_tag": self.base_tag, "base_step": self.base_step,
            "mixture": {s["name"]: s["conversations"] * s["epochs"] for s in mixture["sources"]},
            "mixture_left_out": {m["name"]: m["reason"] for m in mixture["left_out"]},
            "train_conversations": mixture["train_conversations"], "val_conversations": mixture["val_conversations"],
            "conversations_too_long": self.too_long, "val_conversations_too_long": self.val_too_long,
            "epoch_progress": self.consumed / len(self.data.train),
            "chatcore": self.chatcore_at[1] if self.chatcore_at else None,
            "chatcore_partial": self.chatcore_at[2] if self.chatcore_at else None,
        }
