import logging

import pytest
import torch

from hicast.feature_injection import AdapterInjection, fit_maps_to_latent
from hicast.style_adapter import StyleAdapter
from hicast.style_encoder import StyleEncoder, append_style_tokens
from hicast.unet_levels import check_widths, encoder_levels

SD15 = encoder_levels(320, (1, 2, 4, 4), 2)


def test_sd15_plan_matches_the_unet_input_blocks():
    assert [(lv.block, lv.channels, lv.downscale) for lv in SD15] == [(2, 320, 1), (5, 640, 2), (8, 1280, 4), (11, 1280, 8)]


def test_adapter_features_have_unet_widths_and_scales():
    levels = encoder_levels(8, (1, 2, 2), 1)
    a = StyleAdapter([lv.channels for lv in levels], hidden=(8, 8, 8))
    feats = a(torch.rand(2, 3, 64, 48))
    assert [tuple(f.shape) for f in feats] == [(2, 8, 8, 6), (2, 16, 4, 3), (2, 16, 2, 2)]
    assert all(torch.count_nonzero(f) == 0 for f in feats)  # zero-initialised outputs add nothing yet


def test_width_mismatch_names_the_layer():
    with pytest.raises(ValueError, match=r"input_blocks\.5 has 640"):
        check_widths(SD15, (320, 320, 1280, 1280), "adapter 'edge'")
    with pytest.raises(ValueError, match=r"3 feature levels, but the UNet layer input_blocks\.11"):
        check_widths(SD15, (320, 640, 1280), "adapter 'edge'")


def test_injection_adds_weighted_sum_at_level_ends_and_resizes_maps(caplog):
    levels = encoder_levels(4, (1, 2), 1)
    a, b = (StyleAdapter([4, 8], hidden=(4, 4)) for _ in range(2))
    for m in (a, b):
        for conv in m.out:
            torch.nn.init.normal_(conv.weight)
    maps = torch.rand(1, 40, 40, 3)
    inj = AdapterInjection(levels, [("a", a, maps, 0.5), ("b", b, maps, 2.0), ("off", a, maps, 0.0)])
    opts = {"block": ("input", levels[1].block), "original_shape": [2, 4, 4, 4]}
    h = torch.zeros(2, 8, 2, 2)
    with caplog.at_level(logging.WARNING, logger="hicast"):
        out = inj(h, opts)
    assert "map 'a' is 40x40 but the latent grid 4x4 needs 32x32" in caplog.text
    m = fit_maps_to_latent(maps.permute(0, 3, 1, 2), (4, 4), "a")
    want = 0.5 * a(m)[1] + 2.0 * b(m)[1]
    assert torch.allclose(out, want.repeat(2, 1, 1, 1), atol=1e-6)
    assert inj(h, {"block": ("input", 0), "original_shape": [2, 4, 4, 4]}) is h  # other blocks untouched
    assert not AdapterInjection(levels, [("a", a, maps, 0.0)])


def test_style_encoder_tokens_and_context_append():
    enc = StyleEncoder(context_dim=16, tokens=3, widths=(4, 8), hidden=16, clip_dim=5)
    f = enc(torch.rand(2, 3, 50, 70), clip_embeds=torch.rand(2, 5))
    assert f.shape == (2, 3, 16)
    ctx = torch.zeros(4, 7, 16)
    out = append_style_tokens(ctx, f, 0.5)
    assert out.shape == (4, 10, 16) and torch.equal(out[2:, 7:], 0.5 * f) and torch.equal(out[:, :7], ctx)
    with pytest.raises(ValueError, match="width 5"):
        enc(torch.rand(1, 3, 32, 32), clip_embeds=torch.rand(1, 6))
    with pytest.raises(ValueError, match="trained without CLIP"):
        StyleEncoder(context_dim=16, tokens=1, widths=(4,), hidden=8)(torch.rand(1, 3, 8, 8), torch.rand(1, 5))
    with pytest.raises(ValueError, match="style image"):
        append_style_tokens(torch.zeros(3, 7, 16), f, 1.0)
