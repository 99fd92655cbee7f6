"""The toy DreamStyle weights (scripts/train_toy_dreamstyle.py -> assets/dreamstyle_toy -> fixture) load with
the stock loaders and carry what training put in them."""
import os

import numpy as np
import pytest
import torch

from dreamstyle.lora_file import read_safetensors


def roundtrip(vae, clips):
    """Mean content score and pixel MSE of decode(encode(clip)) over CLIPS."""
    from dreamstyle.pair_scores import content_score
    scores, errors = [], []
    for clip in clips:
        x = torch.from_numpy(clip).float() / 255
        out = vae.decode(vae.encode(x))[0][:len(clip)].clamp(0, 1)
        scores.append(content_score(clip, (out * 255).round().byte().numpy()))
        errors.append(float(((out - x) ** 2).mean()))
    return float(np.mean(scores)), float(np.mean(errors))


@pytest.mark.slow
def test_toy_vae_keeps_the_layout_where_the_random_tiny_one_is_grey(comfy, tiny_models, toy_vae_loads):
    import comfy.sd
    import comfy.utils
    from dreamstyle.synthetic_benchmark import heldout_scenes, scene_seed
    from dreamstyle.synthetic_scenes import make_scene
    # the benchmark's held-out scenes: the toy VAE never saw them (scripts/train_toy_dreamstyle.py, 16 scenes)
    clips = [make_scene(scene_seed(0, i), 5, 64, 64).render() for i in sorted(heldout_scenes(16, 0.25, 0))]

    def load(name):
        sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", name), return_metadata=True)
        return comfy.sd.VAE(sd=sd, metadata=meta)
    (toy, toy_mse), (rnd, rnd_mse) = roundtrip(load("toy_dreamstyle_wan21_vae.safetensors"), clips), \
        roundtrip(load("tiny_wan21_vae.safetensors"), clips)
    # measured: layout 0.62 vs 0.01, pixel MSE 0.0076 vs 0.027; what is lost caps the toy's structure score
    # (docs/dreamstyle_training.md)
    assert toy > rnd + 0.5 and toy_mse < 0.5 * rnd_mse, (toy, rnd, toy_mse, rnd_mse)


def test_toy_dit_and_token_lora_load_with_the_stock_loaders(comfy, tiny_models, unistyle):
    import comfy.model_base
    import nodes
    from unistyle_pack.nodes import dreamstyle as ds
    model = nodes.UNETLoader().load_unet("toy_dreamstyle_wan21_i2v.safetensors", "default")[0]
    assert isinstance(model.model, comfy.model_base.WAN21) and model.model.image_to_video
    patched = ds.DreamStyleTokenLoRALoader.execute(model, "toy_dreamstyle_token_lora.safetensors", 1.0).result[0]
    assert patched is not model
    tensors, meta = read_safetensors(os.path.join(tiny_models, "loras", "toy_dreamstyle_token_lora.safetensors"))
    assert meta["stage"] == "SFT" and meta["init_lora_sha256"]  # CT -> SFT
    ups = [tensors[f"blocks.0.self_attn.q.lora_up.{t}.weight"] for t in ("first_frame", "video", "style_image")]
    assert all(float(u.abs().max()) > 0 for u in ups)
    assert not torch.equal(ups[0], ups[1]) and not torch.equal(ups[1], ups[2])  # token-specific ups were trained
    plain, _ = read_safetensors(os.path.join(tiny_models, "loras", "toy_dreamstyle_plain_lora.safetensors"))
    p = [plain[f"blocks.0.self_attn.q.lora_up.{t}.weight"] for t in ("first_frame", "video", "style_image")]
    assert torch.equal(p[0], p[1]) and torch.equal(p[1], p[2])
    assert np.isfinite([float(u.abs().max()) for u in p]).all()


@pytest.mark.slow
def test_toy_token_lora_moves_heldout_scenes_towards_the_style_through_the_nodes(tiny_models, unistyle, test_nodes,
                                                                                toy_vae_loads):
    """Learning evidence through the host: DreamStyleConditioning + the toy token LoRA + a stock KSampler
    (euler, 12 steps, shift 5, no guidance) + DreamStyleDecode, on the toy benchmark's held-out pairs (style
    image condition). Same scores as scripts/train_toy_dreamstyle.py (docs/dreamstyle_training.md)."""
    import comfy.sd
    import comfy.utils
    import nodes
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    from dreamstyle.pair_scores import content_score, style_score
    from dreamstyle.synthetic_benchmark import synthetic_pairs
    from scripts.train_toy_dreamstyle import FRAMES, HELDOUT, SCENES, SIZE, STYLES
    from unistyle_pack.nodes import dreamstyle as ds
    clip = test_nodes.TinyUMT5Loader.execute(clip_name="tiny_umt5.safetensors").result[0]
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "toy_dreamstyle_wan21_vae.safetensors"),
                                           return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)
    base = nodes.UNETLoader().load_unet("toy_dreamstyle_wan21_i2v.safetensors", "default")[0]
    base = ModelSamplingSD3().patch(base, shift=5.0)[0]
    token = ds.DreamStyleTokenLoRALoader.execute(base, "toy_dreamstyle_token_lora.safetensors", 1.0).result[0]
    pairs = [p for p in synthetic_pairs(scenes=SCENES, styles=STYLES, frames=FRAMES, height=SIZE, width=SIZE, refs=2,
                                        heldout=HELDOUT, seed=0) if p.split == "heldout"]
    assert len(pairs) == 8
    scores = {"raw": [], "base": [], "token": []}
    content = []
    for i, pair in enumerate(pairs):
        refs = np.stack(pair.refs)
        style = torch.from_numpy(refs[:1]).float() / 255
        cv = test_nodes.TinyCLIPVisionEncode.execute(image=style, seed=0).result[0]
        text = nodes.CLIPTextEncode().encode(clip, pair.caption_ns)[0]
        pos, neg, latent, _ = ds.DreamStyleConditioning.execute(
            text, text, vae, torch.from_numpy(pair.raw).float() / 255, style_image=style,
            clip_vision_output=cv).result
        scores["raw"].append(1 - style_score(pair.raw, refs))
        for name, model in (("base", base), ("token", token)):
            out = nodes.common_ksampler(model, i, 12, 1.0, "euler", "simple", pos, neg, latent)[0]
            frames = (ds.DreamStyleDecode.execute(vae, out).result[0] * 255).round().byte().numpy()
            assert frames.shape == pair.raw.shape
            scores[name].append(1 - style_score(frames, refs))
            if name == "token":
                content.append(content_score(pair.raw, frames))
    raw, plain_base, tok = (float(np.mean(scores[k])) for k in ("raw", "base", "token"))
    # issue #5's target, >= 30 % closer than the raw input (measured 0.331 vs 0.485, -32 %, as the toy script's
    # own sampler gives), and well beyond what the base alone does (0.470)
    assert tok <= 0.7 * raw and tok < plain_base - 0.1, (raw, plain_base, tok)
    assert float(np.mean(content)) > 0.2, content  # layout kept (another scene's stylization scores 0.01)
