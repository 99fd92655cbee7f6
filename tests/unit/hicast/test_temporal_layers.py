import torch

from hicast.temporal_layers import TemporalInjection, TemporalLayers

from .tiny_unet import TinyUNet


def _run(unet, x, patches, chunks=1):
    t = torch.full((x.shape[0],), 500.0)
    ctx = torch.randn(1, 3, 16, generator=torch.Generator().manual_seed(2)).expand(x.shape[0], -1, -1)
    return unet(x, t, ctx, {"patches": {"input_block_patch": patches}, "cond_or_uncond": list(range(chunks))})


def test_zero_initialised_temporal_layers_leave_outputs_bit_identical():
    unet = TinyUNet()
    layers = TemporalLayers([lv.channels for lv in unet.levels], heads=2)
    x = torch.randn(6, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_run(unet, x, []), _run(unet, x, [TemporalInjection(unet.levels, layers)], chunks=2))


def test_trained_layers_mix_frames_of_one_clip_only():
    unet = TinyUNet()
    layers = TemporalLayers([lv.channels for lv in unet.levels], heads=2)
    for layer in layers.layers:
        torch.nn.init.normal_(layer.proj_out.weight, std=0.5)
    inject = TemporalInjection(unet.levels, layers)
    g = torch.Generator().manual_seed(0)
    clip_a, clip_b = torch.randn(3, 4, 16, 16, generator=g), torch.randn(3, 4, 16, 16, generator=g)
    out = _run(unet, torch.cat([clip_a, clip_b]), [inject], chunks=2)  # cond chunk, uncond chunk
    assert not torch.equal(out, _run(unet, torch.cat([clip_a, clip_b]), []))
    changed_b = clip_b.clone()
    changed_b[0] += 1.0
    out2 = _run(unet, torch.cat([clip_a, changed_b]), [inject], chunks=2)
    assert torch.allclose(out[:3], out2[:3], atol=1e-6)  # clip a does not see clip b
    assert not torch.allclose(out[4:], out2[4:])           # later frames of clip b see its first frame
    single = torch.randn(1, 4, 16, 16, generator=g)
    assert torch.equal(_run(unet, single, [inject]), _run(unet, single, []))  # one frame: no temporal context
