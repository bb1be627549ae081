"""The hand-written training ops equal the plain torch ones they replace (values and gradients), and the
optimizer's foreach/stacked-state path is the per-tensor update, bit for bit, across a state_dict reload."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import nanochat_core.model.gpt as gpt_mod
from nanochat_core.model.fused_ops import relu_squared, rms_norm, rotary
from nanochat_core.model.optim import MuonAdamW, adamw_update_, polar_express, normuon_scale
from nanochat_core.model.sizing import build_model_config, meta_model
from nanochat_core.model.softcap_loss import softcap_cross_entropy


def plain_head(h, weight, targets, vocab, softcap, reduction="mean"):
    logits = F.linear(h, weight)[..., :vocab].float()
    logits = torch.tanh(logits.div_(softcap)) * softcap
    return F.cross_entropy(logits, targets, ignore_index=-1, reduction=reduction)


def grads(fn, *tensors):
    out = fn()
    return out.detach(), torch.autograd.grad(out, tensors)


@pytest.mark.parametrize("n, d, vocab, padded", [(300, 16, 200, 256), (64, 8, 4096, 4096)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_softcap_loss_equals_plain_head_with_ignored_targets(n, d, vocab, padded, reduction):
    torch.manual_seed(0)
    h = torch.randn(n, d, requires_grad=True)
    w = (torch.randn(padded, d) * 2).requires_grad_()  # large logits: the softcap matters
    t = torch.randint(0, vocab, (n,))
    t[::7] = -1
    ref, (rh, rw) = grads(lambda: plain_head(h, w, t, vocab, 15.0, reduction), h, w)
    # 3 chunks or more, so the chunk loop and its row offsets are exercised
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("nanochat_core.model.softcap_loss.CHUNK_ELEMENTS", vocab * (n // 3))
        got, (gh, gw) = grads(lambda: softcap_cross_entropy(h, w, t, vocab, 15.0, reduction), h, w)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gh, rh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw, rw, rtol=1e-4, atol=1e-6)
    assert gw[vocab:].abs().sum() == 0  # padding rows never get a gradient
    assert gh[::7].abs().sum() == 0  # ignored rows neither


def test_softcap_loss_scales_by_incoming_gradient_and_rejects_bad_input():
    h = torch.randn(10, 4, requires_grad=True)
    w = torch.randn(64, 4, requires_grad=True)
    t = torch.randint(0, 64, (10,))
    (g1,) = torch.autograd.grad(softcap_cross_entropy(h, w, t, 64, 15.0), h)
    (g3,) = torch.autograd.grad(3.0 * softcap_cross_entropy(h, w, t, 64, 15.0), h)
    torch.testing.assert_close(g3, 3.0 * g1)
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        softcap_cross_entropy(h, w, t, 64, 15.0, "none")
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        softcap_cross_entropy(h[None], w, t, 64, 15.0)


@pytest.mark.parametrize("shape", [(4, 7, 24), (2, 5, 3, 12)])
def test_rms_norm_and_relu_squared_equal_torch_with_gradients(shape):
    torch.manual_seed(1)
    x = torch.randn(*shape, requires_grad=True)
    g = torch.randn(*shape)
    for ours, plain in ((rms_norm, lambda v: F.rms_norm(v, (v.size(-1),))), (relu_squared, lambda v: F.relu(v).square())):
        y1 = ours(x)
        y2 = plain(x)
        assert torch.equal(y1, y2)  # the forward is torch's own kernel: identical values
        (d1,) = torch.autograd.grad(y1, x, g)
        (d2,) = torch.autograd.grad(y2, x, g)
        torch.testing.assert_close(d1, d2, rtol=1e-5, atol=1e-6)
        assert type(ours(x).grad_fn).__name__ in ("_RMSNormBackward", "_ReluSquaredBackward")  # ours ran
    with torch.no_grad():  # no gradient wanted: the plain op, no custom node
        assert torch.equal(rms_norm(x), F.rms_norm(x, (shape[-1],)))


def plain_rotary(x, cos, sin):
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def test_rotary_equals_the_sliced_formula_with_gradients():
    torch.manual_seed(2)
    x = torch.randn(2, 9, 3, 12, requires_grad=True)
    angles = torch.randn(1, 9, 1, 6)
    cos, sin = angles.cos(), angles.sin()
    g = torch.randn(2, 9, 3, 12)
    y = rotary(x, cos, sin)
    assert type(y.grad_fn).__name__ == "_RotaryBackward"
    torch.testing.assert_close(y, plain_rotary(x, cos, sin), rtol=1e-6, atol=1e-6)
    (d1,) = torch.autograd.grad(y, x, g)
    (d2,) = torch.autograd.grad(plain_rotary(x, cos, sin), x, g)
    torch.testing.assert_close(d1, d2, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # a rotation keeps lengths


def tiny_model():
    torch.manual_seed(42)
    model = meta_model(build_model_config(2, 300, 32, aspect_ratio=12, head_dim=12, window_pattern="L"))
    model.to_empty(device="cpu")
    model.init_weights()
    with torch.no_grad():  # c_proj starts at zero: give every path a gradient
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_model_loss_and_gradients_equal_the_plain_ops(monkeypatch):
    model = tiny_model()
    x = torch.randint(0, 300, (4, 32))
    y = torch.randint(0, 300, (4, 32))
    y[0, :5] = -1

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    fused_loss, fused = loss_and_grads()
    monkeypatch.setattr(gpt_mod, "norm", lambda v: F.rms_norm(v, (v.size(-1),)))
    monkeypatch.setattr(gpt_mod, "relu_squared", lambda v: F.relu(v).square())
    monkeypatch.setattr(gpt_mod, "rotary", plain_rotary)
    monkeypatch.setattr(gpt_mod.GPT, "_chunked_loss_applies", lambda self: False)
    plain_loss, plain = loss_and_grads()
    assert fused_loss == pytest.approx(plain_loss, rel=1e-6)
    for name in plain:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-4, atol=1e-7, msg=name)
    # evaluation's per-token losses still come from the plain head
    per_token = model(x, y, loss_reduction="none")
    assert per_token.shape == (4, 32) and per_token[0, :5].abs().sum() == 0


def reference_muon_step(params, grads, states, lr, momentum, beta2, wd, ns_steps):
    """The per-parameter update as it was written before the stacked-state change."""
    rows, cols = params[0].shape
    red_dim = -1 if rows >= cols else -2
    for st, p in zip(states, params):
        if not st:
            st["momentum_buffer"] = torch.zeros_like(p)
            st["second_momentum_buffer"] = torch.zeros((rows, 1) if red_dim == -1 else (1, cols))
    g = torch.stack(grads)
    buf = torch.stack([st["momentum_buffer"] for st in states])
    v2 = torch.stack([st["second_momentum_buffer"] for st in states])
    buf.lerp_(g, 1 - momentum)
    g = g.lerp_(buf, momentum)
    g = normuon_scale(polar_express(g, ns_steps), v2, beta2, red_dim)
    eff_lr = lr * max(1.0, rows / cols) ** 0.5
    P = torch.stack([p.data for p in params])
    P.sub_(eff_lr * g + eff_lr * wd * P * ((g * P) >= 0))
    for i, (p, st) in enumerate(zip(params, states)):
        p.data.copy_(P[i])
        st["momentum_buffer"] = buf[i].clone()
        st["second_momentum_buffer"] = v2[i].clone()


def test_optimizer_equals_per_tensor_reference_bit_for_bit_across_a_reload():
    torch.manual_seed(3)
    mats = [torch.randn(6, 4) for _ in range(3)]
    vecs = [torch.randn(5), torch.randn(2, 3)]
    ours = [t.clone().requires_grad_() for t in mats + vecs]
    ref = [t.clone() for t in mats + vecs]
    groups = [dict(kind="muon", params=ours[:3], lr=0.02, momentum=0.9, ns_steps=5, beta2=0.9, weight_decay=0.1),
              dict(kind="adamw", params=[ours[3]], lr=0.01, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.01),
              dict(kind="adamw", params=[ours[4]], lr=0.3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)]
    opt = MuonAdamW(groups, ortho_dtype=torch.float32)
    muon_states = [{} for _ in range(3)]
    adam_states = [dict(step=0, m=torch.zeros_like(t), v=torch.zeros_like(t)) for t in ref[3:]]
    hyper = [(0.01, 0.8, 0.95, 1e-10, 0.01), (0.3, 0.9, 0.99, 1e-8, 0.0)]
    for step in range(4):
        gs = [torch.randn_like(t) for t in ref]
        for p, g in zip(ours, gs):
            p.grad = g.clone()
        opt.step()
        reference_muon_step(ref[:3], gs[:3], muon_states, 0.02, 0.9, 0.9, 0.1, 5)
        for t, g, st, (lr, b1, b2, eps, wd) in zip(ref[3:], gs[3:], adam_states, hyper):
            st["step"] += 1
            adamw_update_(t, g, st["m"], st["v"], st["step"], lr, b1, b2, eps, wd)
        for a, b in zip(ours, ref):
            assert torch.equal(a.detach(), b), f"step {step}"
        if step == 1:  # a reload gives separate buffers: the next step re-stacks them and stays exact
            saved = copy.deepcopy(opt.state_dict())
            opt = MuonAdamW(groups, ortho_dtype=torch.float32)
            opt.load_state_dict(saved)
    for st, want in zip((opt.state[p] for p in ours[:3]), muon_states):
        assert torch.equal(st["momentum_buffer"], want["momentum_buffer"])
        assert st["momentum_buffer"].shape == (6, 4)  # per-param layout in what state_dict saves


def plain_polar_express(G, steps=5):
    """The iteration written with `@` and separate scalings (what polar_express computed before baddbmm)."""
    from nanochat_core.model.optim import POLAR_EXPRESS_COEFFS

    X = G / (G.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)
    tall = X.size(-2) > X.size(-1)
    for a, b, c in POLAR_EXPRESS_COEFFS[:steps]:
        A = X.mT @ X if tall else X @ X.mT
        X = a * X + (X @ (b * A + c * (A @ A)) if tall else (b * A + c * (A @ A)) @ X)
    return X


@pytest.mark.parametrize("shape", [(3, 8, 5), (3, 5, 8), (6, 6), (2, 2, 4, 3)])
def test_polar_express_equals_the_plain_iteration(shape):
    torch.manual_seed(4)
    G = torch.randn(*shape)
    got = polar_express(G, 5, torch.float32)
    assert got.shape == G.shape
    torch.testing.assert_close(got, plain_polar_express(G), rtol=1e-5, atol=1e-5)


def test_muon_without_decay_equals_the_decay_formula_at_zero():
    from nanochat_core.model.optim import muon_update_

    torch.manual_seed(5)
    p1 = [torch.randn(4, 6) for _ in range(2)]
    p2 = [t.clone() for t in p1]
    grads = [torch.randn(4, 6) for _ in range(2)]
    muon_update_(p1, grads, [{}, {}], 0.02, 0.95, 0.9, 0.0, 5, torch.float32)
    g = normuon_scale(polar_express(torch.stack(grads).lerp_(torch.stack(grads) * 0.05, 0.95), 5), torch.zeros(2, 1, 6),
                      0.9, -2)
    P = torch.stack(p2)
    P.sub_(0.02 * g + 0.02 * 0.0 * P * ((g * P) >= 0))
    for a, b in zip(p1, P):
        assert torch.equal(a, b)
