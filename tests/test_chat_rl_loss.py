"""The policy-gradient pieces of chat_rl on hand-made batches: advantages, masking, token-level normalization."""
from __future__ import annotations

import math

import pytest
import torch

from nanochat_core.train.rollouts import advantages, policy_gradient_loss, rollout_seed, training_batch

PAD = 99


def test_advantage_is_reward_minus_the_questions_mean():
    assert advantages(torch.tensor([1.0, 0.0, 0.0, 1.0])).tolist() == [0.5, -0.5, -0.5, 0.5]
    assert advantages(torch.tensor([1.0, 1.0])).tolist() == [0.0, 0.0]  # all alike: nothing to learn
    # no z-score: the spread of the rewards is not divided out
    assert advantages(torch.tensor([3.0, 1.0])).tolist() == [1.0, -1.0]


def test_training_batch_trains_only_on_sampled_tokens():
    # row 0: prompt 1 2 | sampled 3 | forced (calculator) 4 | sampled 5 ; row 1: prompt 1 2 | sampled 6
    sequences = [[1, 2, 3, 4, 5], [1, 2, 6]]
    sampled = [[False, False, True, False, True], [False, False, True]]
    inputs, targets = training_batch(sequences, sampled, PAD, "cpu")
    assert inputs.tolist() == [[1, 2, 3, 4], [1, 2, 6, PAD]]
    assert targets.tolist() == [[-1, 3, -1, 5], [-1, 6, -1, -1]]


def test_policy_gradient_loss_equals_the_hand_computation():
    logp = torch.tensor([[-9.0, -0.5, -7.0, -3.0],
                         [-8.0, -2.0, -6.0, -5.0]])
    targets = torch.tensor([[-1, 3, -1, 5],
                            [-1, 6, -1, -1]])
    adv = torch.tensor([0.5, -0.5])
    # sampled tokens: (0,1) (0,3) (1,1), 3 of them: the sum of logp * advantage over them, over 3
    expected = -((-0.5 * 0.5) + (-3.0 * 0.5) + (-2.0 * -0.5)) / 3
    assert policy_gradient_loss(logp, targets, adv).item() == pytest.approx(expected) == pytest.approx(0.25)
    logp[targets < 0] = -100.0  # prompt, calculator output and padding positions count for nothing
    assert policy_gradient_loss(logp, targets, adv).item() == pytest.approx(expected)


def test_loss_gradient_raises_the_better_samples_log_probability():
    logits = torch.zeros(2, 1, 4, requires_grad=True)
    targets = torch.tensor([[1], [2]])
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    policy_gradient_loss(logp, targets, torch.tensor([1.0, -1.0])).backward()
    with torch.no_grad():
        after = torch.log_softmax(logits - 0.1 * logits.grad, -1)
    assert after[0, 0, 1] > math.log(0.25) > after[1, 0, 2]


def test_no_sampled_tokens_gives_zero_not_nan():
    loss = policy_gradient_loss(torch.zeros(1, 3), torch.full((1, 3), -1), torch.tensor([1.0]))
    assert loss.item() == 0.0


def test_rollout_seeds_are_a_function_of_step_question_and_batch():
    assert rollout_seed(3, 17, 0) == rollout_seed(3, 17, 0)
    assert len({rollout_seed(s, q, b) for s in range(3) for q in range(3) for b in range(2)}) == 18
    assert all(0 <= rollout_seed(s, 5, 1) < 2**31 for s in range(100))
