"""MuonAdamW: AdamW for embeddings, lm_head and scalars; Muon (Polar Express + NorMuon + cautious decay) for
every matrix inside the blocks. DistMuonAdamW: the same update, with gradients averaged inside step() and
optimizer state sharded across ranks (each parameter has one owner rank). Facts §3.

Param groups carry kind="adamw" (lr, betas, eps, weight_decay) or kind="muon" (lr, momentum, ns_steps, beta2,
weight_decay). Every group records "initial_lr" so schedules can set group["lr"] = group["initial_lr"] * lrm.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from nanochat_core.common import device as devmod

# Polar Express quintic coefficients (a, b, c), one triple per iteration.
POLAR_EXPRESS_COEFFS = [
    (8.1566, -22.4833, 15.8788),
    (4.0429, -2.8089, 0.5000),
    (3.8917, -2.7725, 0.5061),
    (3.2858, -2.3681, 0.4645),
    (2.3465, -1.7098, 0.4232),
]


def polar_express(G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Approximately orthogonalise the last two dims of G (batched), computing in `dtype`.

    The Gram matrix is taken on the short side (X^T X for tall, X X^T for wide) so its cost stays small.
    Each iteration is three batched matmuls with the scalings folded in (baddbmm: beta*input + alpha*a@b):
    on tiny matrices the step is bound by dispatched ops, and `@` on 3-D tensors adds expand/view ops."""
    X = G.to(dtype)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)  # spectral norm <= Frobenius norm < 1
    squeeze = X.dim() == 2
    X = X.unsqueeze(0) if squeeze else X.reshape(-1, *X.shape[-2:])
    tall = X.size(-2) > X.size(-1)
    for a, b, c in POLAR_EXPRESS_COEFFS[:steps]:
        A = torch.bmm(X.mT, X) if tall else torch.bmm(X, X.mT)
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b*A + c*A@A
        X = torch.baddbmm(X, X, B, beta=a) if tall else torch.baddbmm(X, B, X, beta=a)  # a*X + X@B (or B@X)
    return X.squeeze(0) if squeeze else X.reshape(G.shape)


def adamw_update_(p, grad, exp_avg, exp_avg_sq, step: int, lr: float, beta1: float, beta2: float, eps: float,
                  wd: float) -> None:
    """One AdamW step in fp32: decoupled decay p *= 1 - lr*wd, bias-corrected moments."""
    adamw_foreach_([p], [grad], [exp_avg], [exp_avg_sq], [step], [lr], [beta1], [beta2], [eps], [wd])


@torch.no_grad()
def adamw_foreach_(params, grads, exp_avgs, exp_avg_sqs, steps, lrs, beta1s, beta2s, epss, wds) -> None:
    """AdamW over many tensors at once, each with its own hyperparameters: every line is one foreach op
    (one dispatch for all tensors) doing, per element, exactly what the one-tensor ops did."""
    gs = [g.float() for g in grads]
    torch._foreach_mul_(params, [1 - lr * wd for lr, wd in zip(lrs, wds)])
    torch._foreach_lerp_(exp_avgs, gs, [1 - b for b in beta1s])
    torch._foreach_lerp_(exp_avg_sqs, torch._foreach_mul(gs, gs), [1 - b for b in beta2s])
    denoms = torch._foreach_div(exp_avg_sqs, [1 - b ** n for b, n in zip(beta2s, steps)])
    torch._foreach_sqrt_(denoms)
    torch._foreach_add_(denoms, list(epss))
    torch._foreach_addcdiv_(params, exp_avgs, denoms, [-lr / (1 - b ** n) for lr, b, n in zip(lrs, beta1s, steps)])


def normuon_scale(g: torch.Tensor, second_moment: torch.Tensor, beta2: float, red_dim: int) -> torch.Tensor:
    """NorMuon: divide by the rsqrt of a factored (per-row or per-column) EMA of g^2, then rescale so the
    update keeps its Frobenius norm. g: (N, rows, cols) fp32; second_moment updated in place."""
    v_mean = g.square().mean(dim=red_dim, keepdim=True)
    n_red = g.size(red_dim)
    v_norm = (v_mean.sum(dim=(-2, -1), keepdim=True) * n_red).sqrt()
    second_moment.lerp_(v_mean, 1 - beta2)
    step_size = second_moment.clamp_min(1e-10).rsqrt()
    v_norm_new = (v_mean * n_red * step_size.square()).sum(dim=(-2, -1), keepdim=True).sqrt()
    return g * (step_size * (v_norm / v_norm_new.clamp_min(1e-10)))


def stacked_state(states: list[dict], key: str) -> torch.Tensor:
    """The params' `key` buffers as one (N, ...) tensor whose rows ARE the per-param buffers (views), so a
    step updates the state in place without stacking it and copying it back. The per-param layout of the
    state (what state_dict() saves) is unchanged; buffers that are not such views (fresh from
    load_state_dict) are stacked once and re-pointed at the rows."""
    bufs = [st[key] for st in states]
    base = bufs[0]._base
    if (base is not None and base.dim() == bufs[0].dim() + 1 and base.size(0) == len(bufs)
            and all(b._base is base and b.data_ptr() == base[i].data_ptr() for i, b in enumerate(bufs))):
        return base
    base = torch.stack(bufs)
    for i, st in enumerate(states):
        st[key] = base[i]
    return base


@torch.no_grad()
def muon_update_(params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict], lr: float, momentum: float,
                 beta2: float, wd: float, ns_steps: int, ortho_dtype: torch.dtype) -> None:
    """One Muon step for same-shaped params, stacked so the orthogonalisation runs as one batched matmul."""
    rows, cols = params[0].shape[-2], params[0].shape[-1]
    red_dim = -1 if rows >= cols else -2  # second moment per row for tall/square, per column for wide
    for st, p in zip(states, params):
        if not st:
            st["momentum_buffer"] = torch.zeros_like(p, dtype=torch.float32)
            st["second_momentum_buffer"] = torch.zeros(
                (rows, 1) if red_dim == -1 else (1, cols), dtype=torch.float32, device=p.device)
    g = torch.stack([x.float() for x in grads])
    buf = stacked_state(states, "momentum_buffer")
    v2 = stacked_state(states, "second_momentum_buffer")
    # Nesterov momentum via lerp
    buf.lerp_(g, 1 - momentum)
    g = g.lerp_(buf, momentum)
    g = polar_express(g, ns_steps, ortho_dtype).float()
    g = normuon_scale(g, v2, beta2, red_dim)
    eff_lr = lr * max(1.0, rows / cols) ** 0.5
    P = torch.stack(params)  # step() runs under no_grad: the params themselves, no .data (a detach op each)
    if wd != 0:
        mask = (g * P) >= 0  # cautious decay: only decay where the update agrees in sign with the weight
        P.sub_(eff_lr * g + eff_lr * wd * P * mask)
    else:  # the same values: the decay term is +0 then
        P.sub_(eff_lr * g)
    torch._foreach_copy_(params, list(P.unbind(0)))


class MuonAdamW(torch.optim.Optimizer):
    # torch wraps these four in torch._disable_dynamo, whose first call imports torch._dynamo: 1.2 s of every
    # training process's start on CPU (a demo cell trains for 2-70 s). The wrapper only stops dynamo from
    # tracing into them, and this optimizer is never traced (torch.compile takes the model, not the step),
    # so the undecorated functions are the same behaviour without the import.
    add_param_group = torch.optim.Optimizer.add_param_group.__wrapped__
    zero_grad = torch.optim.Optimizer.zero_grad.__wrapped__
    state_dict = torch.optim.Optimizer.state_dict.__wrapped__
    load_state_dict = torch.optim.Optimizer.load_state_dict.__wrapped__

    def __init__(self, param_groups, ortho_dtype: torch.dtype | None = None):
        groups = [dict(g) for g in param_groups]
        for g in groups:
            if g.get("kind") not in ("adamw", "muon"):
                raise ValueError(f"each param group needs kind='adamw' or 'muon', got {g.get('kind')!r}")
            g.setdefault("initial_lr", g["lr"])
            g.setdefault("weight_decay", 0.0)
            if g["kind"] == "muon":
                g.setdefault("momentum", 0.95)
                g.setdefault("ns_steps", 5)
                g.setdefault("beta2", 0.9)
                shapes = {tuple(p.shape) for p in g["params"]}
                if len(shapes) != 1 or len(next(iter(shapes))) != 2:
                    raise ValueError(f"a muon group needs 2-D params of one shape, got {sorted(shapes)}")
            else:
                g.setdefault("betas", (0.9, 0.999))
                g.setdefault("eps", 1e-10)
        super().__init__(groups, {})
        # Orthogonalise in the compute dtype: bf16 on CUDA, fp32 on CPU (bf16 matmul there is ~100x slower).
        self.ortho_dtype = ortho_dtype

    def _ortho_dtype(self, p: torch.Tensor) -> torch.dtype:
        return self.ortho_dtype if self.ortho_dtype is not None else devmod.compute_dtype(p.device.type)

    def _adamw_group(self, group, params) -> None:
        self._adamw_groups([(group, params)])

    def _adamw_groups(self, work) -> None:
        """Every AdamW param of every (group, params) pair in one set of foreach ops."""
        cols = [[] for _ in range(10)]
        for group, params in work:
            beta1, beta2 = group["betas"]
            for p in params:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    st["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                st["step"] += 1
                for col, v in zip(cols, (p, p.grad, st["exp_avg"], st["exp_avg_sq"], st["step"], group["lr"],
                                         beta1, beta2, group["eps"], group["weight_decay"])):
                    col.append(v)
        if cols[0]:
            adamw_foreach_(*cols)

    def _muon_group(self, group, params) -> None:
        params = [p for p in params if p.grad is not None]
        if not params:
            return
        muon_update_(params, [p.grad for p in params], [self.state[p] for p in params], group["lr"],
                     group["momentum"], group["beta2"], group["weight_decay"], group["ns_steps"],
                     self._ortho_dtype(params[0]))

    def _update(self, group, params) -> None:
        (self._adamw_group if group["kind"] == "adamw" else self._muon_group)(group, params)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._apply_updates()
        return loss

    def _apply_updates(self) -> None:
        self._adamw_groups([(g, g["params"]) for g in self.param_groups if g["kind"] == "adamw"])
        for group in self.param_groups:
            if group["kind"] == "muon":
                self._muon_group(group, group["params"])


class DistMuonAdamW(MuonAdamW):
    """Data-parallel MuonAdamW without a DDP wrapper, for any backend (gloo has no reduce_scatter).

    Each parameter has one owner rank (Muon groups: contiguous chunks of each group; AdamW: greedy by size).
    step(): grads are summed onto their owner (one flat reduce per owner), averaged, the owner updates its
    params (so optimizer state lives only there: each rank's state_dict() is its own shard, to be reloaded by
    the same rank with the same world size), then the owner broadcasts the new values (one flat broadcast)."""

    def __init__(self, param_groups, ortho_dtype: torch.dtype | None = None, process_group=None):
        super().__init__(param_groups, ortho_dtype)
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("DistMuonAdamW needs torch.distributed initialised (torchrun + init_process_group)")
        self.pg = process_group
        self.rank = dist.get_rank(process_group)
        self.world_size = dist.get_world_size(process_group)
        self._assign_owners()

    def _assign_owners(self) -> None:
        W = self.world_size
        load = [0] * W
        owners: list[list[int]] = []
        for group in self.param_groups:
            ps = group["params"]
            if group["kind"] == "muon":
                chunk = -(-len(ps) // W)
                own = [j // chunk for j in range(len(ps))]
            else:
                own = []
                for p in ps:
                    r = min(range(W), key=lambda i: load[i])
                    own.append(r)
            for p, r in zip(ps, own):
                load[r] += p.numel()
            owners.append(own)
        self.owners = owners
        # Flat buckets per owner rank, in a fixed order shared by all ranks.
        self.buckets: list[list[torch.Tensor]] = [[] for _ in range(W)]
        for group, own in zip(self.param_groups, owners):
            for p, r in zip(group["params"], own):
                self.buckets[r].append(p)

    def _global(self, r: int) -> int:
        return dist.get_global_rank(self.pg, r) if self.pg is not None else r

    def _apply_updates(self) -> None:
        W = self.world_size
        # 1) sum every gradient onto its owner (missing grads count as zeros so all ranks make the same calls)
        flats, works = [], []
        for r in range(W):
            ps = self.buckets[r]
            if not ps:
                flats.append(None)
                continue
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in ps])
            works.append(dist.reduce(flat, dst=self._global(r), op=dist.ReduceOp.SUM, group=self.pg, async_op=True))
            flats.append(flat)
        for w in works:
            w.wait()
        mine = self.buckets[self.rank]
        if mine:
            flat = flats[self.rank].div_(W)
            off = 0
            for p in mine:
                n = p.numel()
                g = flat[off:off + n].view_as(p).to(p.dtype)
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.copy_(g)
                off += n
        # 2) owners update their own params
        for group, own in zip(self.param_groups, self.owners):
            owned = [p for p, r in zip(group["params"], own) if r == self.rank]
            if owned:
                self._update(group, owned)
        # 3) owners broadcast the updated values
        flats, works = [], []
        for r in range(W):
            ps = self.buckets[r]
            if not ps:
                continue
            flat = torch.cat([p.data.reshape(-1) for p in ps]) if r == self.rank else torch.empty(
                sum(p.numel() for p in ps), dtype=ps[0].dtype, device=ps[0].device)
            works.append(dist.broadcast(flat, src=self._global(r), group=self.pg, async_op=True))
            flats.append((ps, flat))
        for w in works:
            w.wait()
        for ps, flat in flats:
            off = 0
            for p in ps:
                n = p.numel()
                p.data.copy_(flat[off:off + n].view_as(p))
                off += n
