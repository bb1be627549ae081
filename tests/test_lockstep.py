"""Lockstep decoding of many prompts of different lengths (chat.lockstep) equals decoding each prompt
alone (chat.tools.complete_rows): the same tokens, the same forced (calculator) spans, the same finish
reasons, on a tiny GPT trained here to call the calculator and on a random-weight GPT with a sliding
window; sampled rows draw what their own seed draws alone; batches stay within their token budget."""
import pytest
import torch

from nanochat_core.chat.lockstep import batches_by_length, complete_lockstep, complete_many
from nanochat_core.chat.tools import complete_rows
from nanochat_core.model.gpt import GPT, GPTConfig
from nanochat_core.tokenizer.bpe import Tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOK = Tokenizer.from_mergeable_ranks({bytes([i]): i for i in range(256)})  # one byte per token
S = TOK.encode_special
BOS = TOK.get_bos_token_id()
PY_START, PY_END, OUT_START, OUT_END, A_END = (S(n) for n in ("<|python_start|>", "<|python_end|>",
                                                               "<|output_start|>", "<|output_end|>",
                                                               "<|assistant_end|>"))


def prompt_of(a: int, b: int, pad: int) -> list[int]:
    # the padding makes the prompts of one batch differ in length by up to 6 tokens
    return [BOS, *TOK.encode(f"{a}+{b}" + "?" * pad + "=")]


def answer_of(a: int, b: int) -> list[int]:
    return [PY_START, *TOK.encode(f"{a}+{b}"), PY_END, OUT_START, *TOK.encode(str(a + b)), OUT_END,
            *TOK.encode(" ok"), A_END]


PROBLEMS = [(a, b, (a * 3 + b) % 7) for a, b in [(2, 3), (4, 4), (7, 1), (5, 9), (8, 6), (3, 3), (9, 9), (1, 0),
                                                 (6, 2), (0, 7), (12, 5), (33, 4)]]


@pytest.fixture(scope="module")
def tool_model() -> GPT:
    """A tiny GPT trained (real AdamW steps, fixed seed) on prompt -> tool call -> " ok" sequences, so its
    greedy answers open calculator calls whose outputs must be forced back in."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one_torch_thread is per test and starts after a module fixture
    try:
        return train_tool_model()
    finally:
        torch.set_num_threads(threads)


def train_tool_model() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=TOK.get_vocab_size(), n_layer=2, n_head=2, n_kv_head=2,
                          n_embd=48, window_pattern="L"))
    model.init_weights()
    rows = [prompt_of(a, b, p) + answer_of(a, b) for a, b, p in PROBLEMS]
    width = max(map(len, rows))
    x = torch.tensor([r + [A_END] * (width - len(r)) for r in rows])
    y = x[:, 1:].clone()
    for i, (a, b, p) in enumerate(PROBLEMS):
        y[i, :len(prompt_of(a, b, p)) - 1] = -1  # learn the answers only
    # 40 steps: most answers are right, some loop until max_tokens or garble their call (the calculator
    # refuses it): the tests below see every kind of row
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(x[:, :-1], targets=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def one_at_a_time(model, prompts, max_tokens, temperature=0.0, top_k=None, seeds=None):
    seeds = seeds or [42] * len(prompts)
    return [complete_rows(model, TOK, p, max_tokens, temperature=temperature, top_k=top_k, seed=s)[0]
            for p, s in zip(prompts, seeds)]


def as_tuples(completions):
    return [(c.tokens, c.forced, c.finish_reason) for c in completions]


def test_lockstep_equals_one_at_a_time_on_a_model_that_calls_the_calculator(tool_model):
    prompts = [prompt_of(a, b, p) for a, b, p in PROBLEMS]
    assert len({len(p) for p in prompts}) >= 5
    alone = one_at_a_time(tool_model, prompts, 24)
    together = complete_lockstep(tool_model, TOK, prompts, 24)
    assert as_tuples(together) == as_tuples(alone)
    # the comparison means something: most rows called the calculator and got its value forced in,
    # and rows ended on their own (at <|assistant_end|>) at different steps
    called = [c for c in alone if any(c.forced)]
    assert len(called) >= 3
    for c in called:
        expression = TOK.decode(c.tokens[c.tokens.index(PY_START) + 1:c.tokens.index(PY_END)])
        value = TOK.decode(c.tokens[c.tokens.index(OUT_START) + 1:c.tokens.index(OUT_END)])
        assert value == str(eval(expression))  # the calculator's answer, computed here another way
    assert "stop" in {c.finish_reason for c in alone}
    assert len({len(c.tokens) for c in alone}) > 1


def test_rows_that_run_out_of_tokens_stop_at_max_tokens(tool_model):
    prompts = [prompt_of(a, b, p) for a, b, p in PROBLEMS[:6]]
    together = complete_lockstep(tool_model, TOK, prompts, 7)  # cuts every answer inside its tool call
    assert as_tuples(together) == as_tuples(one_at_a_time(tool_model, prompts, 7))
    assert all(c.finish_reason == "length" and len(c.tokens) == 7 for c in together)


def random_model() -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(sequence_len=64, vocab_size=TOK.get_vocab_size(), n_layer=2, n_head=4, n_kv_head=2,
                      n_embd=64))
    m.init_weights()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # init zeroes the output projections, which would make every prompt alike
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    m.window_sizes = [6, 64]  # a sliding window shorter than the prompts: decode must window each row alike
    return m.eval()


RAGGED = [[BOS], [BOS, 5, 17], [BOS, 42, 8, 99, 3, 3, 3, 1, 2], [BOS, 7, 7, 7, 7], [BOS, 200, 100, 50, 25, 12, 6, 3,
                                                                                     1, 9, 9, 9, 9, 4, 4]]


def test_ragged_prompts_on_a_random_model_with_a_sliding_window():
    m = random_model()
    assert as_tuples(complete_lockstep(m, TOK, RAGGED, 20)) == as_tuples(one_at_a_time(m, RAGGED, 20))


def test_sampled_rows_draw_what_their_own_seed_draws_alone():
    m = random_model()
    seeds = [1, 2, 3, 1, 5]
    alone = one_at_a_time(m, RAGGED, 16, temperature=1.0, top_k=20, seeds=seeds)
    together = complete_lockstep(m, TOK, RAGGED, 16, temperature=1.0, top_k=20, seeds=seeds)
    assert as_tuples(together) == as_tuples(alone)
    assert as_tuples(together) != as_tuples(complete_lockstep(m, TOK, RAGGED, 16, temperature=1.0, top_k=20,
                                                              seeds=[s + 10 for s in seeds]))


def test_batches_respect_the_token_budget_and_keep_every_row_once():
    lengths = [40, 41, 62, 55, 40, 300, 43, 58, 61, 44]
    batches = batches_by_length(lengths, 64, 500)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * (longest + 64) <= 500
    assert [5] in batches  # longer than the budget alone: a batch of its own
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # shortest first: rows of a batch are close in length


def test_complete_many_in_small_batches_equals_one_batch(tool_model):
    prompts = [prompt_of(a, b, p) for a, b, p in PROBLEMS]
    whole = complete_many(tool_model, TOK, prompts, 24)
    budget = 3 * (max(map(len, prompts)) + 24)  # three rows a batch at most
    assert len(batches_by_length([len(p) for p in prompts], 24, budget)) >= 4
    assert as_tuples(complete_many(tool_model, TOK, prompts, 24, batch_tokens=budget)) == as_tuples(whole)
    assert complete_many(tool_model, TOK, [], 24) == []
