"""A training process's start-up stays free of torch._dynamo and torch.fx's symbolic shapes (together
about 1.6 s per process on CPU, paid by every demo cell, SFT and RL run): a model built on the meta
device, materialized, initialised, one optimizer step and a state dict. Run in a fresh interpreter,
since the test process may have imported them already."""
import subprocess
import sys

import torch

from nanochat_core.model.gpt import GPT, GPTConfig

HEAVY = ("torch._dynamo", "torch.fx.experimental.symbolic_shapes")
START_UP = """
import sys, torch
from nanochat_core.model.gpt import GPT, GPTConfig
with torch.device("meta"):
    model = GPT(GPTConfig(sequence_len=16, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=16))
model.to_empty_on("cpu")
model.init_weights()
opt = model.setup_optimizer()
idx = torch.randint(0, 64, (2, 16))
model(idx, idx).backward()
opt.step()
opt.zero_grad(set_to_none=True)
opt.load_state_dict(opt.state_dict())
print(" ".join(m for m in {heavy!r} if m in sys.modules) or "none")
"""


def test_start_up_imports_neither_dynamo_nor_symbolic_shapes():
    out = subprocess.run([sys.executable, "-c", START_UP.format(heavy=HEAVY)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["none"], f"imported at start-up: {out.stdout.strip()}"


def test_meta_build_then_init_equals_a_model_built_on_cpu():
    """to_empty_on + init_weights gives the weights a model built on the CPU gets from the same seed's
    init_weights: the meta path skips only the constructors' initialisation, which init_weights overwrites."""
    config = GPTConfig(sequence_len=16, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=16)
    with torch.device("meta"):
        meta = GPT(config)
    meta.to_empty_on("cpu")
    torch.manual_seed(7)
    meta.init_weights()
    cpu = GPT(config)
    torch.manual_seed(7)
    cpu.init_weights()
    for (name, a), (_, b) in zip(meta.state_dict().items(), cpu.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(meta.cos, cpu.cos) and torch.equal(meta.sin, cpu.sin)
