"""MuonAdamW: the AdamW part equals torch's AdamW; Muon updates are near-orthogonal; NorMuon and cautious
weight decay do what they say; state round-trips; the distributed variant equals the single-process one."""
import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nanochat_core.model.optim import MuonAdamW, muon_update_, normuon_scale, polar_express


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_adamw_matches_torch():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(8, 5))
    b = torch.nn.Parameter(a.detach().clone())
    hp = dict(lr=0.01, betas=(0.8, 0.96), eps=1e-10, weight_decay=0.05)
    ours = MuonAdamW([dict(kind="adamw", params=[a], **hp)])
    ref = torch.optim.AdamW([b], **hp)
    for _ in range(10):
        g = torch.randn(8, 5)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ours.param_groups[0]["initial_lr"] == 0.01


@pytest.mark.parametrize("shape", [(128, 32), (32, 128), (64, 64)])
def test_polar_express_is_near_orthogonal(shape):
    torch.manual_seed(0)
    G = torch.randn(shape) if shape[0] != shape[1] else torch.linalg.qr(torch.randn(shape))[0] @ torch.diag(
        torch.linspace(0.05, 3, shape[0]))  # square: a controlled spectrum (random square ones have ~0 sigmas)
    s = torch.linalg.svdvals(polar_express(G, 5, torch.float32))
    assert s.min() > 0.5 and s.max() < 1.5, s


def test_muon_update_near_orthogonal_with_lr_scale():
    torch.manual_seed(0)
    p = torch.randn(128, 32) * 0.1
    before = p.clone()
    lr = 0.01
    muon_update_([p], [torch.randn(128, 32)], [{}], lr=lr, momentum=0.95, beta2=0.9, wd=0.0, ns_steps=5,
                 ortho_dtype=torch.float32)
    eff_lr = lr * (128 / 32) ** 0.5  # tall matrices step further: max(1, rows/cols)^0.5
    s = torch.linalg.svdvals((before - p) / eff_lr)
    assert s.min() > 0.5 and s.max() < 1.5, s


def test_normuon_equalises_rows_and_keeps_norm():
    torch.manual_seed(0)
    g = torch.randn(1, 16, 8) * torch.linspace(0.1, 3, 16)[None, :, None]  # rows of very different scale
    v2 = torch.zeros(1, 16, 1)
    out = normuon_scale(g, v2, beta2=0.9, red_dim=-1)
    assert torch.allclose(out.norm(), g.norm(), rtol=1e-5)
    row_norms = out.norm(dim=-1)
    assert torch.allclose(row_norms, row_norms.mean().expand_as(row_norms), rtol=1e-4)
    assert (v2 > 0).all()  # the second moment was updated in place


def test_cautious_weight_decay_only_where_update_agrees():
    torch.manual_seed(0)
    p0, g = torch.randn(32, 32), torch.randn(32, 32)
    p_nowd, p_wd = p0.clone(), p0.clone()
    kw = dict(lr=0.02, momentum=0.9, beta2=0.9, ns_steps=5, ortho_dtype=torch.float32)
    muon_update_([p_nowd], [g.clone()], [{}], wd=0.0, **kw)
    muon_update_([p_wd], [g.clone()], [{}], wd=0.5, **kw)
    update = (p0 - p_nowd) / 0.02
    mask = (update * p0) >= 0
    assert 0 < mask.float().mean() < 1
    torch.testing.assert_close(p_wd - p_nowd, -0.02 * 0.5 * p0 * mask, rtol=1e-4, atol=1e-6)


def _tiny_model(seed=0):
    from nanochat_core.model.gpt import GPT, GPTConfig
    torch.manual_seed(seed)
    m = GPT(GPTConfig(sequence_len=32, vocab_size=300, n_layer=2, n_head=4, n_kv_head=4, n_embd=64))
    m.init_weights()
    with torch.no_grad():  # off the zero-init point: there some true gradients are ~0 and Adam amplifies float noise
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)) * 0.05)
    return m


def _train(model, opt, steps, seed=0, rank=0, world=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, 300, (2 * world, 16), generator=g)
        xs = x[2 * rank:2 * rank + 2]
        model(xs, torch.roll(xs, -1, 1)).backward()
        opt.step()
        model.zero_grad(set_to_none=True)


def test_setup_optimizer_groups_and_state_round_trip():
    model = _tiny_model()
    opt = model.setup_optimizer(weight_decay=0.1)
    kinds = [g["kind"] for g in opt.param_groups]
    assert kinds[:5] == ["adamw"] * 5 and set(kinds[5:]) == {"muon"}
    assert [g["betas"] for g in opt.param_groups[:5]] == [(0.8, 0.96), (0.8, 0.995), (0.8, 0.995), (0.8, 0.95),
                                                          (0.96, 0.95)]
    assert all("initial_lr" in g for g in opt.param_groups)
    assert all(g["momentum"] == 0.95 and g["weight_decay"] == 0.1 for g in opt.param_groups if g["kind"] == "muon")
    _train(model, opt, 2)
    twin = _tiny_model()
    twin.load_state_dict(model.state_dict())
    opt2 = twin.setup_optimizer(weight_decay=0.1)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as if read from a file: no shared buffers
    _train(model, opt, 2, seed=5)
    _train(twin, opt2, 2, seed=5)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def _dist_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _tiny_model()
        opt = model.setup_optimizer(weight_decay=0.1, distributed=True)
        _train(model, opt, 3, rank=rank, world=world)
        n_state = len(opt.state_dict()["state"])
        torch.save({"params": [p.detach() for p in model.parameters()], "n_state": n_state}, f"{out}/r{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes importing torch: ~5-15 s on 2 cores
def test_dist_muon_adamw_matches_single_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dist_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    # single process, same global batch: the mean loss over the 4 rows equals the mean of the ranks' means
    model = _tiny_model()
    opt = model.setup_optimizer(weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randint(0, 300, (4, 16), generator=g)
        model(x, torch.roll(x, -1, 1)).backward()
        opt.step()
        model.zero_grad(set_to_none=True)
    r0, r1 = (torch.load(tmp_path / f"r{r}.pt") for r in (0, 1))
    n_params = len(list(model.parameters()))
    assert r0["n_state"] + r1["n_state"] == n_params and r0["n_state"] > 0 and r1["n_state"] > 0  # sharded
    for ours, a, b in zip(model.parameters(), r0["params"], r1["params"]):
        assert torch.equal(a, b)  # ranks agree exactly
        torch.testing.assert_close(a, ours.detach(), rtol=1e-3, atol=1e-3)  # Adam amplifies float-order noise
