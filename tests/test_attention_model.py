"""The GPT through each attention backend available on CPU equals the same GPT through the SDPA-with-mask
reference (logits and every parameter's gradient), and KV-cache decoding equals the full forward at every
step, with sliding windows shorter than, equal to and longer than the sequence."""
import pytest
import torch

from nanochat_core.model import attention as A
from nanochat_core.model.gpt import GPT, GPTConfig
from nanochat_core.model.kv_cache import KVCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQ = 40
FLEX_OK, FLEX_WHY = A.flex_available()
FLEX = pytest.param("flex", marks=pytest.mark.skipif(not FLEX_OK, reason=FLEX_WHY))


def model_(windows, backend, seed=0):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(sequence_len=SEQ, vocab_size=300, n_layer=3, n_head=4, n_kv_head=2, n_embd=64))
    m.init_weights()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # init zeroes the output projections: random weights make attention matter
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.window_sizes = list(windows)
    m.set_attention(backend, training=backend not in ("flex",))
    return m


WINDOWS = {"shorter": (5, 11, SEQ), "equal": (SEQ, SEQ - 1, SEQ), "longer": (3 * SEQ, 5 * SEQ, 3 * SEQ)}


@pytest.mark.parametrize("windows", WINDOWS.values(), ids=WINDOWS.keys())
def test_sdpa_model_forward_and_backward_equal_reference(windows):
    idx = torch.randint(0, 300, (2, SEQ), generator=torch.Generator().manual_seed(7))
    results = {}
    for backend in (A.REFERENCE, "sdpa"):
        m = model_(windows, backend)
        loss = m(idx[:, :-1], idx[:, 1:])
        loss.backward()
        results[backend] = (m(idx).detach(), loss.detach(), {n: p.grad for n, p in m.named_parameters()})
    ref_logits, ref_loss, ref_grads = results[A.REFERENCE]
    logits, loss, grads = results["sdpa"]
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.skipif(not FLEX_OK, reason=FLEX_WHY)
@pytest.mark.parametrize("windows", WINDOWS.values(), ids=WINDOWS.keys())
def test_flex_model_forward_equals_reference(windows):
    idx = torch.randint(0, 300, (2, SEQ), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = model_(windows, A.REFERENCE)(idx)
        out = model_(windows, "flex")(idx)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("windows", WINDOWS.values(), ids=WINDOWS.keys())
@pytest.mark.parametrize("backend", ["sdpa", FLEX, A.REFERENCE])
def test_kv_cache_decode_equals_full_forward(backend, windows):
    """Prefill 9 tokens, then decode one token at a time past the short windows: each step's logits equal the
    full forward's logits at that position."""
    m = model_(windows, backend).eval()
    idx = torch.randint(0, 300, (2, SEQ), generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        full = m(idx)
        cache = KVCache.for_model(m, 2, SEQ)
        steps = [m(idx[:, :9], kv_cache=cache)]
        for t in range(9, SEQ):
            steps.append(m(idx[:, t:t + 1], kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)


def test_decode_that_ignored_the_window_would_be_caught():
    """The decode test above can tell: with short windows, the full forward differs from one whose windows
    are all long, by far more than its tolerance."""
    idx = torch.randint(0, 300, (1, SEQ), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        short = model_(WINDOWS["shorter"], "sdpa")(idx)
        long = model_(WINDOWS["longer"], "sdpa")(idx)
    assert (short[:, 12:] - long[:, 12:]).abs().max() > 1e-2


def test_unconfigured_model_chooses_automatically_and_says_why():
    m = model_(WINDOWS["shorter"], "sdpa")
    m.attention = None
    m(torch.zeros(1, 4, dtype=torch.long))
    assert m.attention.backend == "sdpa" and m.attention.reason.startswith("auto: on cpu")
