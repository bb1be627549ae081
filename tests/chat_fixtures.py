"""A tiny chat checkpoint for the chat_cli / chat_web tests: a BPE tokenizer trained on the generated
corpus and a 1-layer GPT with random weights, written where chat_cli and chat_web look for them."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from helpers import generated_documents
from train_fixtures import write_tokenizer

TAG, STEP = "d1", 7


def write_chat_checkpoint(base: Path, source: str = "sft", tag: str = TAG, step: int = STEP) -> Path:
    """$base/tokenizer/ and $base/<chatsft|base>_checkpoints/<tag>/ at `step`; returns the checkpoint folder."""
    from nanochat_core.model.gpt import GPT, GPTConfig
    from nanochat_core.model.checkpoint import save_checkpoint

    tok = write_tokenizer(base / "tokenizer", generated_documents(300), vocab_size=300)
    config = GPTConfig(sequence_len=128, vocab_size=tok.get_vocab_size(), n_layer=1, n_head=2, n_kv_head=2,
                       n_embd=32, window_pattern="L")
    torch.manual_seed(0)
    model = GPT(config)
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # init zeroes the output projections and makes lm_head tiny: every answer alike
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    folder = base / ("chatsft_checkpoints" if source == "sft" else "base_checkpoints") / tag
    save_checkpoint(folder, step, model.state_dict(), None,
                    {"step": step, "model_config": asdict(config), "user_config": {"model_tag": tag}})
    return folder
