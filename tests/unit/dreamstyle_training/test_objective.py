"""Flow-matching objective on the DreamStyle layout, and the 1:2:1 condition sampler."""
import collections

import pytest
import torch

from dreamstyle.condition_latents import condition_latents, plan_layout
from dreamstyle.condition_sampler import ConditionSampler, parse_ratio
from dreamstyle.flow_matching import add_noise, flow_matching_loss, shift_sigma, timestep, training_pair


def test_shift_is_wans_time_snr_shift():
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    s = shift_sigma(u, 5.0)
    assert torch.allclose(s, 5 * u / (1 + 4 * u))
    assert s[0] == 0 and s[-1] == 1 and bool((s[1:-1] > u[1:-1]).all())  # shift > 1 moves σ towards noise
    assert torch.equal(shift_sigma(u, 1.0), u)
    assert float(timestep(torch.tensor([0.25]))) == 250.0


def test_add_noise_endpoints_and_velocity():
    x0, eps = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4)
    assert torch.equal(add_noise(x0, eps, torch.tensor([0.0, 0.0])), x0)
    assert torch.equal(add_noise(x0, eps, torch.tensor([1.0, 1.0])), eps)
    sigma = torch.tensor([0.3, 0.8])
    xt = add_noise(x0, eps, sigma)
    # ComfyUI CONST: x0 = x_t - σ · v with v = ε - x0
    assert torch.allclose(xt - sigma.view(-1, 1, 1, 1, 1) * (eps - x0), x0, atol=1e-6)


@pytest.mark.parametrize("first,style", [(False, False), (True, False), (False, True), (True, True)])
def test_training_pair_follows_the_equations(first, style):
    layout = plan_layout(9, 32, 32, first_frame=first, style_image=style)
    b, v = 2, layout.video
    z_raw, z_sty = torch.randn(b, 16, v, 4, 4), torch.randn(b, 16, v, 4, 4)
    z_first = torch.randn(b, 16, 1, 4, 4) if first else None
    z_style = torch.randn(b, 16, 1, 4, 4) if style else None
    lat = condition_latents(layout, z_raw, z_first, z_style)
    noise = torch.randn(b, 16, layout.total, 4, 4)
    sigma = torch.tensor([0.2, 0.7])
    x, target = training_pair(lat, z_sty, noise, sigma)
    assert x.shape == (b, 36, layout.total, 4, 4)
    s = sigma.view(-1, 1, 1, 1, 1)
    vid = layout.video_slice
    # z^v_t = add_noise(z^sty, t) ⊕c 0 ⊕c z^raw
    assert torch.allclose(x[:, :16, vid], (1 - s) * z_sty + s * noise[:, :, vid])
    assert torch.equal(x[:, 16:20, vid], torch.zeros_like(x[:, 16:20, vid]))
    assert torch.equal(x[:, 20:, vid], z_raw)
    assert torch.allclose(target[:, :, vid], noise[:, :, vid] - z_sty)
    for present, z, f in ((first, z_first, 0), (style, z_style, layout.total - 1)):
        if present:  # add_noise(z, t) with the same σ ⊕c 1 ⊕c z
            assert torch.allclose(x[:, :16, f:f + 1], (1 - s) * z + s * noise[:, :, f:f + 1])
            assert torch.equal(x[:, 16:20, f], torch.ones_like(x[:, 16:20, f]))
            assert torch.equal(x[:, 20:, f:f + 1], z)


def test_input_perturbation_leaves_the_path_and_points_back_to_x0():
    layout = plan_layout(9, 32, 32, style_image=True)
    b, v, vid = 2, layout.video, layout.video_slice
    z_raw, z_sty = torch.randn(b, 16, v, 4, 4), torch.randn(b, 16, v, 4, 4)
    lat = condition_latents(layout, z_raw, None, torch.randn(b, 16, 1, 4, 4))
    noise, error = torch.randn(b, 16, layout.total, 4, 4), 0.3 * torch.randn(b, 16, layout.total, 4, 4)
    sigma = torch.tensor([0.2, 0.7])
    s = sigma.view(-1, 1, 1, 1, 1)
    x0, t0 = training_pair(lat, z_sty, noise, sigma)
    x, target = training_pair(lat, z_sty, noise, sigma, error)
    # the input is off the straight path by σ(1 - σ)e, the condition channels are untouched
    assert torch.allclose(x[:, :16] - x0[:, :16], s * (1 - s) * error, atol=1e-6)
    assert torch.equal(x[:, 16:], x0[:, 16:])
    assert not torch.allclose(target, t0)
    # and the target still lands on the clean latent (CONST: x_0 = x_t - σ v)
    assert torch.allclose(x[:, :16, vid] - s * target[:, :, vid], z_sty, atol=1e-5)
    # σ = 1 (pure noise) and σ = 0 (clean) inputs are not perturbed
    for end in (0.0, 1.0):
        e = torch.full((b,), end)
        assert torch.allclose(training_pair(lat, z_sty, noise, e, error)[0], training_pair(lat, z_sty, noise, e)[0])


def test_loss_is_on_video_frames_only():
    layout = plan_layout(9, 32, 32, first_frame=True, style_image=True)
    pred, target = torch.randn(1, 16, layout.total, 4, 4), torch.randn(1, 16, layout.total, 4, 4)
    loss = flow_matching_loss(pred, target, layout)
    changed = pred.clone()
    changed[:, :, 0] += 100
    changed[:, :, -1] -= 100
    assert torch.equal(flow_matching_loss(changed, target, layout), loss)
    changed[:, :, 1] += 1
    assert flow_matching_loss(changed, target, layout) > loss
    assert torch.allclose(loss, ((pred - target)[:, :, 1:-1] ** 2).mean())


def test_condition_ratio_is_1_2_1_within_tolerance():
    """4000 draws: each share within 0.03 of 1/4, 1/2, 1/4 (about 4 standard deviations)."""
    sampler = ConditionSampler("1:2:1", seed=3)
    counts = collections.Counter(sampler.choose(step, micro) for step in range(2000) for micro in range(2))
    n = sum(counts.values())
    assert abs(counts["text"] / n - 0.25) < 0.03
    assert abs(counts["style_image"] / n - 0.5) < 0.03
    assert abs(counts["first_frame"] / n - 0.25) < 0.03
    assert [sampler.choose(s) for s in range(50)] == [ConditionSampler("1:2:1", 3).choose(s) for s in range(50)]
    only = ConditionSampler("0:0:1", seed=0)
    assert {only.choose(s) for s in range(100)} == {"first_frame"}


@pytest.mark.parametrize("bad", ["1:2", "a:b:c", "0:0:0", "-1:2:1"])
def test_bad_ratio_is_refused_with_the_input_named(bad):
    with pytest.raises(ValueError, match="ratio"):
        parse_ratio(bad)
