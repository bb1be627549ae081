"""Tool use in generation: a row that writes <|python_start|> expr <|python_end|> gets the calculator's
result forced into its next inputs (yielded as forced, and really fed to the model), each row of a
batch on its own timing; refused expressions force nothing; rows stop at <|assistant_end|>."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from nanochat_core.chat.tools import complete, complete_rows, generate_with_tools
from nanochat_core.model.gpt import GPT, GPTConfig
from nanochat_core.tokenizer.bpe import Tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def byte_tokenizer() -> Tokenizer:
    """256 byte tokens + the specials: one character per token, so scripts are easy to write."""
    return Tokenizer.from_mergeable_ranks({bytes([i]): i for i in range(256)})


TOK = byte_tokenizer()
S = TOK.encode_special
PY_START, PY_END, OUT_START, OUT_END, A_END = (S(n) for n in ("<|python_start|>", "<|python_end|>",
                                                               "<|output_start|>", "<|output_end|>",
                                                               "<|assistant_end|>"))
FILL = TOK.encode("Z")[0]  # what the script "samples" where a forced token should replace it


def text(s: str) -> list[int]:
    return TOK.encode(s)


class ScriptedLM(nn.Module):
    """A real nn.Module driven through the engine and its KV cache: at generated step s, row b's
    logits put all the mass on scripts[b][s] (then <|assistant_end|> forever). It records every
    input token it is fed, so a test can check forced tokens really went back into the model."""

    def __init__(self, scripts: list[list[int]], prompt_len: int, vocab_size: int):
        super().__init__()
        self.scripts, self.prompt_len, self.vocab_size = scripts, prompt_len, vocab_size
        self.config = SimpleNamespace(n_kv_head=1, head_dim=2, n_layer=1)
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.seen: list[list[int]] = [[] for _ in scripts]

    def get_device(self):
        return self.anchor.device

    def resolve_compute_dtype(self, device=None):
        return torch.float32

    def forward(self, idx, kv_cache=None):
        B, T = idx.shape
        for b in range(B):
            self.seen[b].extend(idx[b].tolist())
        step = kv_cache.get_pos() + T - self.prompt_len  # 0 right after the prompt
        logits = torch.full((B, T, self.vocab_size), float("-inf"))
        for b in range(B):
            script = self.scripts[b]
            logits[b, -1, script[step] if step < len(script) else A_END] = 0.0
        kv_cache.advance(T)
        return logits


PROMPT_LEN = 4
SCRIPTS = [
    # row 0: a tool call first; three filler steps for <|output_start|> 5 <|output_end|>
    [PY_START, *text("2+3"), PY_END, FILL, FILL, FILL, *text(" ok"), A_END],
    # row 1: text first, the call later, a longer result (4 forced tokens), then more text
    [*text("hi "), PY_START, *text("7*6"), PY_END, FILL, FILL, FILL, FILL, *text("!!"), A_END],
    # row 2: the letter-count form
    [PY_START, *text('"strawberry".count("r")'), PY_END, FILL, FILL, FILL, A_END],
    # row 3: a refused expression: nothing forced, the model's own tokens go on
    [PY_START, *text("x+1"), PY_END, *text("?"), A_END],
]
EXPECTED = [
    "<|python_start|>2+3<|python_end|><|output_start|>5<|output_end|> ok",
    "hi <|python_start|>7*6<|python_end|><|output_start|>42<|output_end|>!!",
    '<|python_start|>"strawberry".count("r")<|python_end|><|output_start|>3<|output_end|>',
    "<|python_start|>x+1<|python_end|>?",
]


def scripted(rows=range(len(SCRIPTS))):
    rows = list(rows)
    model = ScriptedLM([SCRIPTS[r] for r in rows], PROMPT_LEN, TOK.get_vocab_size())
    prompts = [[TOK.get_bos_token_id(), *text(f"q{r}:")] for r in rows]
    assert all(len(p) == PROMPT_LEN for p in prompts)
    return model, prompts


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (1.0, 50)])
def test_batched_rows_get_their_own_tool_results(temperature, top_k):
    model, prompts = scripted()
    out = complete_rows(model, TOK, prompts, max_tokens=64, temperature=temperature, top_k=top_k, seed=3)
    assert [TOK.decode(r.tokens) for r in out] == EXPECTED
    assert [r.finish_reason for r in out] == ["stop"] * 4
    # exactly the output spans are marked forced
    for r in out:
        forced = [t for t, f in zip(r.tokens, r.forced) if f]
        if OUT_START in r.tokens:
            i, j = r.tokens.index(OUT_START), r.tokens.index(OUT_END)
            assert forced == r.tokens[i:j + 1]
        else:
            assert forced == []
    # forced tokens were fed back to the model as its inputs, in the row's own position
    for b, r in enumerate(out):
        assert model.seen[b][PROMPT_LEN:PROMPT_LEN + len(r.tokens)] == r.tokens


def test_generate_with_tools_yields_columns_and_masks():
    model, prompts = scripted([0, 1])
    steps = list(generate_with_tools(model, TOK, prompts, max_tokens=64, temperature=0.0))
    columns = [c for c, _ in steps]
    masks = [m for _, m in steps]
    assert all(len(c) == 2 and len(m) == 2 for c, m in steps)
    # row 0 closes its call at step 4, so steps 5-7 are forced for it; row 1's call closes at step 7
    assert [m[0] for m in masks[:9]] == [False] * 5 + [True] * 3 + [False]
    assert [m[1] for m in masks[:13]] == [False] * 8 + [True] * 4 + [False]
    assert [c[1] for c in columns[8:12]] == [OUT_START, *text("42"), OUT_END]
    # the generator ends once both rows have emitted <|assistant_end|>
    assert columns[-1][1] == A_END and A_END in [c[0] for c in columns]
    assert len(steps) == len(SCRIPTS[1])


def test_max_tokens_cuts_a_forced_output_and_reports_length():
    model, prompts = scripted([0])
    (row,) = complete_rows(model, TOK, prompts, max_tokens=7)
    assert TOK.decode(row.tokens) == "<|python_start|>2+3<|python_end|><|output_start|>5"
    assert row.finish_reason == "length" and row.forced == [False] * 5 + [True, True]


def test_single_prompt_with_several_samples_and_a_real_gpt():
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=TOK.get_vocab_size(), n_layer=1, n_head=2, n_kv_head=2,
                          n_embd=32))
    model.init_weights()
    model.eval()
    prompt = [TOK.get_bos_token_id(), *text("2+2=")]
    a = complete(model, TOK, prompt, max_tokens=12, temperature=1.0, top_k=20, seed=5, num_samples=3)
    b = complete(model, TOK, prompt, max_tokens=12, temperature=1.0, top_k=20, seed=5, num_samples=3)
    assert a == b and len(a) == 3 and len(set(a)) > 1
    assert complete(model, TOK, prompt, max_tokens=0) == [""]
