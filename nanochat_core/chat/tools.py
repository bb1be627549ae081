"""Generation with the calculator tool (nanochat's nanochat/engine.py behaviour).

Each row runs a small state machine over the tokens it emits: <|python_start|> opens an expression,
the tokens up to <|python_end|> are decoded and handed to the calculator, and when it gives a value
the row's next inputs are forced to <|output_start|> str(value) <|output_end|> (the samples drawn
at those steps are discarded). Each row has its own queue, so in a batch one row can be inside a
tool call while another is still writing text. A row ends at <|assistant_end|> or <|bos|>.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator

from nanochat_core.chat.calculator import use_calculator
from nanochat_core.chat.engine import _as_rows, generate

# An expression longer than this is not arithmetic; stop collecting it (the call is then refused).
MAX_EXPRESSION_TOKENS = 512


@dataclass(frozen=True)
class ToolTokens:
    """The special token ids the state machine reacts to."""
    python_start: int
    python_end: int
    output_start: int
    output_end: int
    assistant_end: int
    bos: int

    @classmethod
    def of(cls, tokenizer) -> "ToolTokens":
        special = tokenizer.encode_special
        return cls(special("<|python_start|>"), special("<|python_end|>"), special("<|output_start|>"),
                   special("<|output_end|>"), special("<|assistant_end|>"), tokenizer.get_bos_token_id())

    @property
    def stops(self) -> tuple[int, int]:
        return self.assistant_end, self.bos


class ToolRow:
    """One row's tool state: whether it is inside a python block, the expression so far, the
    tokens still to force, and whether it has ended."""

    def __init__(self, ids: ToolTokens, tokenizer):
        self.ids, self.tokenizer = ids, tokenizer
        self.in_python = False
        self.expression: list[int] = []
        self.too_long = False
        self.forced: deque[int] = deque()
        self.done = False

    def choose(self, sampled: int) -> tuple[int, bool]:
        """The token this row emits now and whether it was forced; updates the state."""
        if self.done:
            return sampled, False
        forced = bool(self.forced)
        token = self.forced.popleft() if forced else sampled
        self.observe(token)
        return token, forced

    def observe(self, token: int) -> None:
        ids = self.ids
        if token in ids.stops:
            self.done = True
        elif token == ids.python_start:
            self.in_python, self.expression, self.too_long = True, [], False
        elif token == ids.python_end and self.in_python:
            self.in_python = False
            value = None if self.too_long else use_calculator(self.tokenizer.decode(self.expression))
            if value is not None:
                self.forced.extend([ids.output_start, *self.tokenizer.encode(str(value)), ids.output_end])
        elif self.in_python:
            if len(self.expression) < MAX_EXPRESSION_TOKENS:
                self.expression.append(token)
            else:
                self.too_long = True


def generate_with_tools(model, tokenizer, tokens, max_tokens: int, temperature: float = 1.0,
                        top_k: int | None = None, seed: int = 42,
                        num_samples: int = 1) -> Iterator[tuple[list[int], list[bool]]]:
    """Yield (token column, forced mask) per step, one entry per row; forced[i] is True where row i's
    token came from the calculator rather than from sampling. `tokens` is one prompt (sampled
    num_samples times) or a list of equal-length prompts, as for engine.generate. Stops after
    max_tokens steps or once every row has ended; a row that ended keeps yielding (ignore it)."""
    ids = ToolTokens.of(tokenizer)
    rows: list[ToolRow] = []
    forced_mask: list[bool] = []

    def steer(column: list[int]) -> list[int]:
        if not rows:
            rows.extend(ToolRow(ids, tokenizer) for _ in column)
        chosen = [row.choose(t) for row, t in zip(rows, column)]
        forced_mask[:] = [f for _, f in chosen]
        return [t for t, _ in chosen]

    for column in generate(model, tokens, max_tokens, temperature, top_k, seed, ids.stops, num_samples, steer=steer):
        yield column, list(forced_mask)


@dataclass
class Completion:
    tokens: list[int]  # what the row emitted, tool outputs included, its stop token excluded
    forced: list[bool]  # per token: came from the calculator
    finish_reason: str  # "stop" (ended at assistant_end/bos) or "length" (ran out of max_tokens)


def complete_rows(model, tokenizer, tokens, max_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                  seed: int = 42, num_samples: int = 1) -> list[Completion]:
    stops = ToolTokens.of(tokenizer).stops
    out = [Completion([], [], "length") for _ in range(len(_as_rows(tokens)) * num_samples)]
    for column, forced in generate_with_tools(model, tokenizer, tokens, max_tokens, temperature, top_k, seed,
                                              num_samples):
        for row, token, was_forced in zip(out, column, forced):
            if row.finish_reason == "stop":
                continue
            if token in stops:
                row.finish_reason = "stop"
            else:
                row.tokens.append(token)
                row.forced.append(was_forced)
    return out


def complete(model, tokenizer, tokens, max_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             seed: int = 42, num_samples: int = 1) -> list[str]:
    """Decoded completions, one per row (tool calls and outputs appear as their special-token text)."""
    rows = complete_rows(model, tokenizer, tokens, max_tokens, temperature, top_k, seed, num_samples)
    return [tokenizer.decode(r.tokens) for r in rows]
