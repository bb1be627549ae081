"""Attention backends equal the SDPA-with-mask reference, forward and backward, for windows shorter than, equal
to and longer than the sequence; the reference itself equals attention written out by hand; the flex block
mask covers exactly the visible blocks; the automatic choice and forced choices say why or refuse clearly."""
import math

import pytest
import torch

from nanochat_core.model import attention as A

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T = 200  # not a multiple of flex's 128-token blocks: the last block is ragged
WINDOWS = {"shorter": 37, "equal": T, "longer": 3 * T}
FLEX_OK, FLEX_WHY = A.flex_available()
CPU_BACKENDS = [
    "sdpa",
    pytest.param("flex", marks=pytest.mark.skipif(not FLEX_OK, reason=FLEX_WHY)),
    pytest.param("fa3", marks=pytest.mark.skip(reason="FA3 needs a CUDA GPU (SM80-SM90) and the `kernels` package")),
]


def qkv(B=2, H=4, Hkv=2, Tq=T, Tk=T, D=16, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Tq, D, generator=g)
    k, v = (torch.randn(B, Hkv, Tk, D, generator=g) for _ in range(2))
    return [t.requires_grad_(grad) for t in (q, k, v)]


def by_hand(q, k, v, window):
    """Causal windowed attention as loops over queries: the reference's own check."""
    B, H, Tq, D = q.shape
    Hkv, Tk = k.size(1), k.size(2)
    t0 = Tk - Tq
    out = torch.zeros_like(q)
    for h in range(H):
        kh, vh = k[:, h // (H // Hkv)], v[:, h // (H // Hkv)]
        for i in range(Tq):
            pos = t0 + i
            lo = max(0, pos - window)
            scores = q[:, h, i:i + 1] @ kh[:, lo:pos + 1].transpose(-1, -2) / math.sqrt(D)
            out[:, h, i] = (scores.softmax(-1) @ vh[:, lo:pos + 1])[:, 0]
    return out


@pytest.mark.parametrize("window", WINDOWS.values(), ids=WINDOWS.keys())
def test_reference_equals_attention_by_hand(window):
    q, k, v = qkv(B=1, Tq=40, Tk=40, seed=1)
    ref = A.attend(q, k, v, window, A.REFERENCE, A.MaskCache())
    torch.testing.assert_close(ref, by_hand(q, k, v, window), atol=1e-5, rtol=1e-5)


def test_reference_with_cached_keys_equals_attention_by_hand():
    q, k, v = qkv(B=1, Tq=7, Tk=40, seed=2)  # a chunk of 7 queries after 33 cached positions
    ref = A.attend(q, k, v, 5, A.REFERENCE, A.MaskCache())
    torch.testing.assert_close(ref, by_hand(q, k, v, 5), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window", WINDOWS.values(), ids=WINDOWS.keys())
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_forward_equals_reference(backend, window):
    q, k, v = qkv()
    ref = A.attend(q, k, v, window, A.REFERENCE, A.MaskCache())
    out = A.attend(q, k, v, window, backend, A.MaskCache())
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("window", WINDOWS.values(), ids=WINDOWS.keys())
@pytest.mark.parametrize("backend", [
    "sdpa",
    pytest.param("flex", marks=pytest.mark.skip(reason=f"FlexAttention has no backward on CPU in torch "
                                                      f"{torch.__version__} (NotImplementedError)")),
    pytest.param("fa3", marks=pytest.mark.skip(reason="FA3 needs a CUDA GPU")),
])
def test_backward_equals_reference(backend, window):
    grads = {}
    for name in (A.REFERENCE, backend):
        q, k, v = qkv(grad=True)
        out = A.attend(q, k, v, window, name, A.MaskCache())
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[name] = (q.grad, k.grad, v.grad)
    for got, want in zip(grads[backend], grads[A.REFERENCE]):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_flex_on_cpu_has_no_backward_so_training_there_is_refused():
    # The fact the skip above rests on; if a later torch adds it, this fails and the skip should go.
    if not FLEX_OK:
        pytest.skip(FLEX_WHY)
    q, k, v = qkv(grad=True)
    with pytest.raises(NotImplementedError, match="backward"):
        A.attend(q, k, v, 37, "flex", A.MaskCache())
    with pytest.raises(ValueError, match="--attention flex: FlexAttention has no backward on cpu"):
        A.resolve_backend("flex", torch.device("cpu"), torch.float32, windowed=True, training=True)


@pytest.mark.skipif(not FLEX_OK, reason=FLEX_WHY)
@pytest.mark.parametrize("window", [0, 37, 128, 150, T])
def test_flex_block_mask_lists_exactly_the_visible_blocks(window):
    """The compiled flex kernels read only the block lists (eager flex reads just the mask function), so
    check them directly: a block is listed iff some pair in it is visible, and listed as full iff every
    pair in it is visible (full blocks skip the mask function)."""
    bm = A.sliding_window_block_mask(T, window, "cpu")
    dense = A.dense_mask(T, T, 0, window, "cpu")
    bq, bk = bm.BLOCK_SIZE
    nq, nk = -(-T // bq), -(-T // bk)
    listed = torch.zeros(nq, nk, dtype=torch.bool)
    full = torch.zeros(nq, nk, dtype=torch.bool)
    for row in range(nq):
        listed[row, bm.kv_indices[0, 0, row, :bm.kv_num_blocks[0, 0, row]]] = True
        full[row, bm.full_kv_indices[0, 0, row, :bm.full_kv_num_blocks[0, 0, row]]] = True
    for i in range(nq):
        for j in range(nk):
            tile = dense[i * bq:(i + 1) * bq, j * bk:(j + 1) * bk]
            assert (listed[i, j] or full[i, j]) == bool(tile.any()), (i, j)
            if full[i, j]:
                assert bool(tile.all()), (i, j)
            assert not (listed[i, j] and full[i, j])


@pytest.mark.parametrize("backend", ["sdpa", pytest.param("flex", marks=pytest.mark.skipif(not FLEX_OK, reason=FLEX_WHY))])
def test_decode_step_respects_the_window(backend):
    """One query after Tk-1 cached keys: sees exactly the last window+1 keys (a decode that ignored the
    window, or kept one key too many or too few, differs from the reference)."""
    q, k, v = qkv(Tq=1, Tk=T)
    for window in (0, 1, 37, T - 2, T - 1, T + 5):
        ref = A.attend(q, k, v, window, A.REFERENCE, A.MaskCache())
        torch.testing.assert_close(A.attend(q, k, v, window, backend, A.MaskCache()), ref, atol=1e-5, rtol=1e-4)
    narrow = A.attend(q, k, v, 37, backend, A.MaskCache())
    assert (narrow - A.attend(q, k, v, 38, backend, A.MaskCache())).abs().max() > 1e-3


def test_mask_cache_keeps_training_shapes_only():
    cache = A.MaskCache()
    m = cache.dense(8, 8, 0, 3, "cpu")
    assert cache.dense(8, 8, 0, 3, "cpu") is m  # built once per shape
    assert cache.dense(1, 9, 8, 3, "cpu") is not cache.dense(1, 9, 8, 3, "cpu")  # decode shapes are not kept
    if FLEX_OK:
        b = cache.block(T, 37, "cpu")
        assert cache.block(T, 37, "cpu") is b
        cache.clear()
        assert cache.block(T, 37, "cpu") is not b


def test_automatic_choice_on_cpu_is_sdpa_and_says_why():
    choice = A.resolve_backend("auto", torch.device("cpu"), torch.float32, windowed=True)
    assert choice.backend == "sdpa"
    assert "no backward" in choice.reason and "FA3 needs CUDA" in choice.reason


def test_forced_backends_that_cannot_run_are_refused_with_the_flag_and_reason():
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match=r"--attention fa3: Flash Attention 3 runs in bf16/fp16"):
        A.resolve_backend("fa3", cpu, torch.float32, windowed=True)
    with pytest.raises(ValueError, match=r"--attention fa3: FA3 needs CUDA"):
        A.resolve_backend("fa3", cpu, torch.bfloat16, windowed=True)
    with pytest.raises(ValueError, match=r"--attention must be one of auto, flex, fa3, sdpa, got 'flash'"):
        A.resolve_backend("flash", cpu, torch.float32, windowed=True)
    assert A.resolve_backend("sdpa", cpu, torch.float32, windowed=True).backend == "sdpa"
    if FLEX_OK:  # inference with flex on CPU is allowed (forward only)
        assert A.resolve_backend("flex", cpu, torch.float32, windowed=True, training=False).backend == "flex"
