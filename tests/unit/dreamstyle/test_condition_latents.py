"""Latent/mask layout against DreamStyle's equations, element by element, for every subset of
conditions and batch > 1."""
import itertools

import pytest
import torch

from dreamstyle.condition_latents import condition_latents, model_input, plan_layout
from dreamstyle.layout import FIRST_FRAME, STYLE_IMAGE, VIDEO, FrameLayout, token_type_runs


def latents(b, f, h=3, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 16, f, h, w, generator=g)


@pytest.mark.parametrize("first,style,batch", list(itertools.product([False, True], [False, True], [1, 3])))
def test_every_subset_matches_the_equations(first, style, batch):
    layout = plan_layout(frames=9, height=24, width=40, first_frame=first, style_image=style)
    assert layout.video == 3 and layout.total == 3 + first + style
    z_raw = latents(batch, 3, seed=1)
    z_first = latents(1, 1, seed=2) if first else None
    z_style = latents(batch, 1, seed=3) if style else None
    c = condition_latents(layout, z_raw, z_first, z_style)
    T = layout.total
    assert c.reference.shape == c.condition.shape == (batch, 16, T, 3, 5)
    assert c.mask.shape == (batch, 4, T, 3, 5) and c.denoise_mask.shape == (batch, 1, T, 3, 5)
    v = layout.video_slice
    # z^v_t = add_noise(z^sty, t) ⊕c 0 ⊕c z^raw
    assert torch.equal(c.condition[:, :, v], z_raw)
    assert torch.all(c.mask[:, :, v] == 0) and torch.all(c.denoise_mask[:, :, v] == 1)
    assert torch.all(c.reference[:, :, v] == 0)
    if first:  # z^1st_t = add_noise(z^1st, t) ⊕c 1 ⊕c z^1st, prepended
        for tensor in (c.reference, c.condition):
            assert torch.equal(tensor[:, :, 0], z_first[:, :, 0].expand(batch, -1, -1, -1))
        assert torch.all(c.mask[:, :, 0] == 1) and torch.all(c.denoise_mask[:, :, 0] == 0)
    if style:  # z^s_t = add_noise(z^s, t) ⊕c 1 ⊕c z^s, appended
        for tensor in (c.reference, c.condition):
            assert torch.equal(tensor[:, :, -1], z_style[:, :, 0])
        assert torch.all(c.mask[:, :, -1] == 1) and torch.all(c.denoise_mask[:, :, -1] == 0)
    x = model_input(torch.randn(batch, 16, T, 3, 5), c)
    assert x.shape[1] == 36 and torch.equal(x[:, 16:20], c.mask) and torch.equal(x[:, 20:], c.condition)


def test_frame_types_and_token_runs_follow_the_layout():
    layout = plan_layout(frames=5, height=16, width=16, first_frame=True, style_image=True)
    assert layout.frame_types().tolist() == [FIRST_FRAME, VIDEO, VIDEO, STYLE_IMAGE]
    assert token_type_runs(layout.frame_types(), 6) == [(FIRST_FRAME, 0, 6), (VIDEO, 6, 18), (STYLE_IMAGE, 18, 24)]
    only_video = plan_layout(frames=1, height=16, width=16)
    assert only_video.frame_types().tolist() == [VIDEO]
    assert FrameLayout.from_dict(layout.to_dict()) == layout


def test_padding_is_planned_and_described():
    layout = plan_layout(frames=7, height=30, width=50, first_frame=True)
    assert (layout.padded_frames, layout.padded_height, layout.padded_width) == (9, 32, 64)
    text = layout.describe()
    assert "7 to 9 frames" in text and "50x30 to 64x32" in text
    assert "padded" not in plan_layout(frames=9, height=32, width=64).describe()


def test_mismatched_inputs_are_refused_with_the_input_named():
    layout = plan_layout(frames=5, height=16, width=16, style_image=True)
    with pytest.raises(ValueError, match="style image latent"):
        condition_latents(layout, latents(1, 2, 2, 2), z_style=latents(1, 1, 3, 2))
    with pytest.raises(ValueError, match="do not match the layout"):
        condition_latents(layout, latents(1, 2, 2, 2))
    with pytest.raises(ValueError, match="video latent has 3 frames"):
        condition_latents(layout, latents(1, 3, 2, 2), z_style=latents(1, 1, 2, 2))
    with pytest.raises(ValueError, match="at least one frame"):
        plan_layout(frames=0, height=16, width=16)
