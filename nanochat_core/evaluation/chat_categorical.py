"""Categorical chat scoring (ARC, MMLU): one forward per batch, the answer is the likeliest letter.

Each conversation is rendered up to <|assistant_start|>; the model's next-token logits there are
restricted to the token ids of the conversation's own letters (A..C for a 3-choice item, A..E for
a 5-choice one), so a model that would rather say something else still answers a letter, and
task.evaluate grades that letter. Prompts are right-padded: with causal attention the padding
never reaches a row's last real position, where its logits are read. A prompt longer than the
model's context is cropped from the left (its end, the question's choices and the assistant
start, is what matters) and counted.
"""
from __future__ import annotations

import torch

from nanochat_core.tokenizer.chat_render import render_for_completion


class LetterTokenError(ValueError):
    """An answer letter that the tokenizer does not encode as exactly one token."""


class LetterIds:
    """Token ids of answer letters, checked once per letter: the assistant's answer is the bare
    letter right after <|assistant_start|>, so its id is tokenizer.encode(letter)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._ids: dict[str, int] = {}

    def __call__(self, letters: list[str]) -> list[int]:
        out = []
        for letter in letters:
            if letter not in self._ids:
                ids = self.tokenizer.encode(letter)
                if len(ids) != 1:
                    raise LetterTokenError(f"answer letter {letter!r} encodes to {len(ids)} tokens {ids}, not one: "
                                           "categorical scoring needs one token per letter (is this the model's tokenizer?)")
                self._ids[letter] = ids[0]
            out.append(self._ids[letter])
        return out


def crop_left(ids: list[int], context: int) -> tuple[list[int], bool]:
    """The last `context` ids, and whether anything was cut."""
    return (ids[-context:], True) if len(ids) > context else (ids, False)


@torch.inference_mode()
def answer_letters(model, tokenizer, conversations: list[dict], device, context: int,
                   letter_ids: LetterIds | None = None) -> tuple[list[str], int]:
    """(predicted letter per conversation, number of prompts cropped) for one batch."""
    letter_ids = letter_ids or LetterIds(tokenizer)
    prompts, cropped = [], 0
    for conv in conversations:
        ids, was_cropped = crop_left(render_for_completion(tokenizer, conv), context)
        prompts.append(ids)
        cropped += was_cropped
    width = max(len(p) for p in prompts)
    pad = tokenizer.get_bos_token_id()
    batch = torch.tensor([p + [pad] * (width - len(p)) for p in prompts], dtype=torch.long, device=device)
    last = torch.tensor([len(p) - 1 for p in prompts], device=device)
    # lm_head at each row's answer position only, not at every position of the batch
    at_answer = model.logits(model.hidden_states(batch)[torch.arange(len(prompts), device=device), last])  # (B, V)
    predicted = []
    for row, conv in zip(at_answer, conversations):
        letters = conv["letters"]
        ids = torch.tensor(letter_ids(letters), device=device)
        predicted.append(letters[int(row[ids].argmax())])
    return predicted, cropped


def run_categorical(model, tokenizer, device, task, indices: list[int], batch_size: int, context: int,
                    progress=None) -> dict:
    """Score task[i] for i in indices in batches; {num_problems, num_correct, cropped_prompts}.
    `progress(done, correct)` is called after each batch."""
    letter_ids = LetterIds(tokenizer)
    correct = cropped = done = 0
    for start in range(0, len(indices), batch_size):
        conversations = [task[i] for i in indices[start:start + batch_size]]
        letters, n_cropped = answer_letters(model, tokenizer, conversations, device, context, letter_ids)
        correct += sum(bool(task.evaluate(c, letter)) for c, letter in zip(conversations, letters))
        cropped += n_cropped
        done += len(conversations)
        if progress:
            progress(done, correct)
    return {"num_problems": done, "num_correct": correct, "cropped_prompts": cropped}
