"""val_bpb, the number every cell, the CSV and the fit rest on, computed by hand another way and
compared with evaluate_bpb to 1e-6: cross-entropy in nats from a float64 log-softmax of the model's
logits, summed over the scored targets, divided by ln 2 and by the UTF-8 bytes of those targets as
tiktoken spells them (not token_bytes.pt); special tokens and ignored targets (-1) count for nothing.
Also split over two gloo ranks, unevenly: the sums are reduced, not the per-rank ratios."""
import math
from dataclasses import asdict

import pytest
import torch
import torch.multiprocessing as mp

from nanochat_core.evaluation.bpb import evaluate_bpb
from nanochat_core.model.gpt import GPT, GPTConfig
from nanochat_core.tokenizer.bpe import Tokenizer, get_token_bytes
from helpers import free_port, generated_documents
from train_fixtures import write_tokenizer

T = 24


def tiny_model(vocab_size: int) -> GPT:
    config = GPTConfig(sequence_len=64, vocab_size=vocab_size, n_layer=1, n_head=2, n_kv_head=2, n_embd=32,
                       window_pattern="L")
    torch.manual_seed(0)
    model = GPT(config)
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # init makes every prediction nearly uniform; random weights make them differ
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def rows(tok: Tokenizer) -> list[torch.Tensor]:
    """Rows of T+1 tokens: plain documents, one with chat special tokens inside, one padded with -1."""
    docs = generated_documents(6, seed=3)
    bos, user, assistant = (tok.encode_special(s) for s in ("<|bos|>", "<|user_start|>", "<|assistant_start|>"))
    out = [([bos] + tok.encode(d))[:T + 1] for d in docs[:3]]
    out.append(([bos, user] + tok.encode(docs[3])[:8] + [assistant] + tok.encode(docs[4]))[:T + 1])
    short = [bos] + tok.encode(docs[5])[:10]
    out.append(short + [-1] * (T + 1 - len(short)))  # targets past the document are ignored
    assert all(len(r) == T + 1 for r in out)
    return [torch.tensor(r) for r in out]


def batches(row_list: list[torch.Tensor], per_batch: int):
    for i in range(0, len(row_list), per_batch):
        chunk = torch.stack(row_list[i:i + per_batch])
        yield chunk[:, :-1].clamp(min=0), chunk[:, 1:]


def by_hand(model: GPT, tok: Tokenizer, row_list: list[torch.Tensor]) -> float:
    specials = {tok.encode_special(s) for s in tok.get_special_tokens()}
    nats, n_bytes = 0.0, 0
    with torch.no_grad():
        for row in row_list:
            logp = torch.log_softmax(model(row[:-1].clamp(min=0)[None]).double()[0], dim=-1)
            for pos, target in enumerate(row[1:].tolist()):
                if target < 0 or target in specials:
                    continue
                nats -= logp[pos, target].item()
                n_bytes += len(tok.enc.decode_single_token_bytes(target))
    return nats / math.log(2) / n_bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("base")  # $NANOCHAT_BASE_DIR layout: base/tokenizer/
    tok = write_tokenizer(base / "tokenizer", generated_documents(300), vocab_size=300)
    return get_token_bytes(base), tok, tiny_model(tok.get_vocab_size())


def test_evaluate_bpb_equals_the_hand_computation(setup):
    token_bytes, tok, model = setup
    row_list = rows(tok)
    expected = by_hand(model, tok, row_list)
    got = evaluate_bpb(model, batches(row_list, 2), steps=3, token_bytes=token_bytes)
    assert got == pytest.approx(expected, rel=1e-6)
    # The special tokens really are in the scored rows, and excluding them changes the number.
    with_specials = evaluate_bpb(model, batches(row_list, 2), steps=3, token_bytes=token_bytes.clamp(min=1))
    assert with_specials != pytest.approx(expected, rel=1e-6)


def rank_worker(rank: int, port: int, state: dict, config: dict, row_list, token_bytes, results):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = GPT(GPTConfig(**config))
        model.load_state_dict(state)
        mine = row_list[:1] if rank == 0 else row_list[1:]  # 1 row vs 4: unequal byte counts
        results[rank] = evaluate_bpb(model.eval(), batches(mine, 2), steps=len(range(0, len(mine), 2)),
                                     token_bytes=token_bytes)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_sum_nats_and_bytes(setup):
    token_bytes, tok, model = setup
    row_list = rows(tok)
    expected = by_hand(model, tok, row_list)
    results = mp.Manager().dict()
    mp.spawn(rank_worker, nprocs=2, join=True,
             args=(free_port(), model.state_dict(), asdict(model.config), row_list,
                   token_bytes, results))
    assert results[0] == pytest.approx(expected, rel=1e-6) and results[1] == results[0]
