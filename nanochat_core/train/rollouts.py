"""RL rollouts and the policy-gradient loss (nanochat's chat_rl, as its docstring states the algorithm).

For one training question: `num_samples` completions are sampled from the current model with the
calculator tool (chat.tools), each graded by the task (reward 1.0 when task.evaluate passes, else
0.0). The advantage of a completion is its reward minus the mean reward of its question's samples:
no z-score, no KL term, no PPO clipping. The loss of one training forward is

    -(sum over sampled tokens of log p(token) * advantage) / (number of sampled tokens)

where "sampled" means written by the model: prompt tokens, calculator outputs (forced by the tool)
and padding are not trained on. As nanochat's engine, a completion ends before its stop token, so the
stop token itself is not part of the sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nanochat_core.chat.tools import complete_rows
from nanochat_core.evaluation.chat_categorical import crop_left
from nanochat_core.tokenizer.chat_render import render_for_completion


@dataclass
class RolloutGroup:
    """The samples of one question: whole sequences (prompt + completion), which tokens were sampled, rewards."""
    question: int
    sequences: list[list[int]]
    sampled: list[list[bool]]
    rewards: list[float]


def rollout_seed(step: int, question: int, batch: int) -> int:
    """nanochat's per-batch sampling seed: a function of (step, question, batch) alone, so a resumed run and
    every split over processes draw the same samples (hashing a tuple of ints is not randomized per process)."""
    return hash((step, question, batch)) & 0x7FFFFFFF


def sample_group(model, tokenizer, task, question: int, step: int, num_samples: int, batch_size: int,
                 max_new_tokens: int, temperature: float, top_k: int, context: int) -> RolloutGroup:
    conversation = task[question]
    prompt, _ = crop_left(render_for_completion(tokenizer, conversation), context)
    group = RolloutGroup(question, [], [], [])
    for b, start in enumerate(range(0, num_samples, batch_size)):
        rows = complete_rows(model, tokenizer, prompt, max_new_tokens, temperature=temperature, top_k=top_k,
                             seed=rollout_seed(step, question, b), num_samples=min(batch_size, num_samples - start))
        for row in rows:
            group.sequences.append(prompt + row.tokens)
            group.sampled.append([False] * len(prompt) + [not forced for forced in row.forced])
            group.rewards.append(float(task.evaluate(conversation, tokenizer.decode(row.tokens))))
    return group


def advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Reward minus the question's mean reward (rewards: one question's samples)."""
    return rewards - rewards.mean()


def training_batch(sequences: list[list[int]], sampled: list[list[bool]], pad_id: int,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of shape (B, T-1): right-padded rows shifted by one; a target is -1 unless
    the token at that position was sampled by the model."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    keep = torch.zeros((len(sequences), width), dtype=torch.bool)
    for i, (seq, mask) in enumerate(zip(sequences, sampled)):
        ids[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        keep[i, :len(mask)] = torch.tensor(mask, dtype=torch.bool)
    targets = ids[:, 1:].clone()
    targets[~keep[:, 1:]] = -1
    return ids[:, :-1].to(device), targets.to(device)


def policy_gradient_loss(token_logp: torch.Tensor, targets: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """-(sum of logp * advantage over the sampled tokens) / (number of sampled tokens).

    token_logp, targets: (B, T); advantage: (B,). Positions with target -1 count for nothing."""
    valid = targets >= 0
    objective = (token_logp * advantage[:, None] * valid).sum()
    return -objective / valid.sum().clamp(min=1)
