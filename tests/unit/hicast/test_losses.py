import math

import pytest
import torch

from hicast.losses import (content_loss, discriminator_loss, generator_adversarial_loss, harmonious_consistency_loss,
                           harmonious_global_loss, patch_contrastive_loss, style_loss)


def test_content_loss_is_summed_feature_mse():
    a = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]
    b = [torch.ones(1, 2, 2, 2) * 2, torch.ones(1, 1, 1, 1) * 3]
    assert content_loss(a, b).item() == pytest.approx(4 + 9)
    assert content_loss(a, a).item() == 0


def test_style_loss_sees_statistics_not_layout():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    shuffled = x.flatten()[torch.randperm(16, generator=torch.Generator().manual_seed(0))].view(1, 1, 4, 4)
    assert style_loss([x], [shuffled]).item() == pytest.approx(0, abs=1e-6)  # same mean/std, other layout
    # channel 0: mean 0 vs 1, std equal -> ||(1, 0)|| = 1 from the means; channel 1 identical
    a = torch.stack([torch.tensor([[0.0, 2.0], [0.0, 2.0]]) - 1.0, torch.ones(2, 2)])[None]
    b = torch.stack([torch.tensor([[0.0, 2.0], [0.0, 2.0]]), torch.ones(2, 2)])[None]
    assert style_loss([a], [b]).item() == pytest.approx(1.0, abs=1e-4)
    assert content_loss([x], [shuffled]).item() > 1


def test_adversarial_losses_on_hand_made_logits():
    zero = torch.zeros(2, 1, 3, 3)
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    confident = discriminator_loss(torch.full_like(zero, 10), torch.full_like(zero, -10)).item()
    assert confident < 1e-3
    assert generator_adversarial_loss(torch.full_like(zero, -10)).item() == pytest.approx(10, abs=1e-3)
    assert generator_adversarial_loss(torch.full_like(zero, 10)).item() < 1e-3


def test_harmonious_global_terms():
    noise, eps_img = torch.zeros(2, 4, 2, 2), torch.ones(2, 4, 2, 2)
    assert harmonious_global_loss(noise, noise, eps_img).item() == pytest.approx(1.0)
    assert harmonious_global_loss(0.5 * eps_img, noise, eps_img).item() == pytest.approx(0.5)  # the minimum


def test_patch_contrastive_prefers_identical_consecutive_frames():
    g = torch.Generator().manual_seed(0)
    frame = torch.randn(1, 3, 8, 8, generator=g)
    static = frame.repeat(3, 1, 1, 1)
    flicker = torch.cat([frame, torch.randn(2, 3, 8, 8, generator=g)])
    l_static = patch_contrastive_loss(static, patch=2, tau=0.1)
    l_flicker = patch_contrastive_loss(flicker, patch=2, tau=0.1)
    assert l_static < 0.1 < l_flicker
    # with a huge temperature every patch looks alike: the loss is chance level, log(16 patches)
    assert patch_contrastive_loss(flicker, patch=2, tau=1e4).item() == pytest.approx(math.log(16), rel=1e-3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        patch_contrastive_loss(frame)


def test_harmonious_consistency_loss_combines_both_terms():
    z = torch.zeros(2, 4, 4, 4)
    x0 = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    total = harmonious_consistency_loss(z + 1, z, z, x0, lambda_local=0.5, tau=0.1)
    assert total.item() == pytest.approx(2.0 + 0.5 * patch_contrastive_loss(x0, tau=0.1).item(), rel=1e-5)
