"""The LR / momentum / weight-decay schedules give nanochat's exact values (nanochat's scripts/base_train.py)."""
import math

import pytest

from nanochat_core.train.schedules import (base_lr_multiplier, muon_momentum, muon_weight_decay,
                                           sft_lr_multiplier, sft_muon_momentum)


def test_base_lr_warmup_flat_warmdown():
    n = 1000  # warmup 40, W = round(0.65 * 1000) = 650: flat through step 350
    assert base_lr_multiplier(0, n) == pytest.approx(1 / 40)
    assert base_lr_multiplier(19, n) == pytest.approx(20 / 40)
    assert base_lr_multiplier(39, n) == 1.0
    assert base_lr_multiplier(40, n) == 1.0
    assert base_lr_multiplier(350, n) == 1.0
    p = 649 / 650
    assert base_lr_multiplier(351, n) == pytest.approx(p + (1 - p) * 0.05)
    p = 1 / 650
    assert base_lr_multiplier(999, n) == pytest.approx(p + (1 - p) * 0.05)
    assert base_lr_multiplier(1000, n) == pytest.approx(0.05)


def test_base_lr_warmup_wins_over_an_early_warmdown():
    # N=100: the warmdown would start after step 35 but warmup runs to 40; nanochat checks warmup first.
    assert base_lr_multiplier(36, 100) == pytest.approx(37 / 40)
    p = 60 / 65
    assert base_lr_multiplier(40, 100) == pytest.approx(p + (1 - p) * 0.05)


def test_base_lr_custom_fractions_and_warmup_ratio():
    assert base_lr_multiplier(999, 1000, warmdown_ratio=0.5, final_lr_frac=0.0) == pytest.approx(1 / 500)
    assert base_lr_multiplier(1000, 1000, final_lr_frac=0.3) == pytest.approx(0.3)
    # warmup_ratio 0.1 of 1000 steps = 100 warmup steps, overriding warmup_steps=40
    assert base_lr_multiplier(49, 1000, warmup_steps=40, warmup_ratio=0.1) == pytest.approx(0.5)
    assert base_lr_multiplier(0, 1000, warmup_ratio=0.0) == 1.0
    assert base_lr_multiplier(5, 10, warmup_steps=0, warmdown_ratio=0.0) == 1.0


def test_muon_momentum_ramp():
    assert muon_momentum(0) == pytest.approx(0.85)
    assert muon_momentum(200) == pytest.approx(0.91)
    assert muon_momentum(400) == pytest.approx(0.97)
    assert muon_momentum(5000) == pytest.approx(0.97)
    assert sft_muon_momentum(0) == pytest.approx(0.85)
    assert sft_muon_momentum(150) == pytest.approx(0.90)
    assert sft_muon_momentum(900) == pytest.approx(0.95)


def test_muon_weight_decay_cosine():
    assert muon_weight_decay(0, 100, 0.2) == pytest.approx(0.2)
    assert muon_weight_decay(50, 100, 0.2) == pytest.approx(0.1)
    assert muon_weight_decay(25, 100, 0.2) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert muon_weight_decay(100, 100, 0.2) == pytest.approx(0.0, abs=1e-12)


def test_sft_schedule():
    # defaults: no warmup, flat until progress 0.5, then linear to 0
    assert sft_lr_multiplier(0.0) == 1.0
    assert sft_lr_multiplier(0.5) == 1.0
    assert sft_lr_multiplier(0.75) == pytest.approx(0.5)
    assert sft_lr_multiplier(1.0) == pytest.approx(0.0)
    assert sft_lr_multiplier(0.05, warmup_ratio=0.1) == pytest.approx(0.5)
    assert sft_lr_multiplier(1.0, final_lr_frac=0.2) == pytest.approx(0.2)
    assert sft_lr_multiplier(0.9, warmdown_ratio=0.0) == 1.0
