"""The released CSD checkpoint (.pth) -> a ComfyUI CLIP-vision file whose image_embeds are CSD's style
embeddings: read with weights_only=True (a code-running pickle is refused), keys ComfyUI's stock loader
converts and detects as ViT-L, the style head as the projection."""
import argparse
import json
import os

import pytest
import torch

WIDTH, LAYERS, HEADS, PATCH, IMAGE, DIM = 8, 24, 2, 14, 224, 6  # ViT-L's depth, patch and grid; tiny width


def fake_csd(seed=0):
    """A CSD-layout state dict (OpenAI CLIP visual under backbone., its proj removed, two heads)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    w, n = WIDTH, (IMAGE // PATCH) ** 2 + 1
    sd = {"conv1.weight": r(w, 3, PATCH, PATCH), "class_embedding": r(w), "positional_embedding": r(n, w),
          "ln_pre.weight": 1 + r(w), "ln_pre.bias": r(w), "ln_post.weight": 1 + r(w), "ln_post.bias": r(w)}
    for i in range(LAYERS):
        p = f"transformer.resblocks.{i}."
        sd.update({p + "ln_1.weight": 1 + r(w), p + "ln_1.bias": r(w), p + "ln_2.weight": 1 + r(w),
                   p + "ln_2.bias": r(w), p + "attn.in_proj_weight": r(3 * w, w), p + "attn.in_proj_bias": r(3 * w),
                   p + "attn.out_proj.weight": r(w, w), p + "attn.out_proj.bias": r(w),
                   p + "mlp.c_fc.weight": r(4 * w, w), p + "mlp.c_fc.bias": r(4 * w),
                   p + "mlp.c_proj.weight": r(w, 4 * w), p + "mlp.c_proj.bias": r(w)})
    out = {f"module.backbone.{k}": v for k, v in sd.items()}
    out.update({"module.last_layer_style": r(w, DIM), "module.last_layer_content": r(w, DIM)})
    return out


@pytest.fixture(scope="module")
def csd_pth(tmp_path_factory):
    path = tmp_path_factory.mktemp("csd") / "checkpoint.pth"
    torch.save({"model_state_dict": fake_csd(), "args": argparse.Namespace(lr=1e-4, arch="vit_large"), "epoch": 3},
               path)
    return path


def tiny_vitl(comfy, folder):
    import comfy.clip_vision
    config = json.load(open(os.path.join(os.path.dirname(comfy.clip_vision.__file__), "clip_vision_config_vitl.json")))
    config.update(hidden_size=WIDTH, num_attention_heads=HEADS, intermediate_size=4 * WIDTH, projection_dim=DIM,
                  hidden_act="quick_gelu")
    path = os.path.join(folder, "tiny_vitl.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return comfy.clip_vision.ClipVisionModel(path)


def test_converted_csd_loads_as_comfy_vit_l_with_the_style_head(comfy, csd_pth, tmp_path):
    import comfy.clip_vision
    import comfy.utils
    from scripts.convert_csd import main
    dst = tmp_path / "csd_style.safetensors"
    assert main([str(csd_pth), str(dst)]) == 0
    sd = comfy.utils.load_torch_file(str(dst), safe_load=True)
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in sd  # what comfy.clip_vision.load converts
    sd = comfy.clip_vision.convert_to_transformers(sd, "visual.")
    # the stock detection: 24 layers (layers.22) and a 257-token grid -> clip_vision_config_vitl.json
    assert "vision_model.encoder.layers.22.layer_norm1.weight" in sd
    assert sd["vision_model.embeddings.position_embedding.weight"].shape[0] == 257
    model = tiny_vitl(comfy, tmp_path)
    missing, unexpected = model.load_sd(sd)
    assert not missing and not unexpected
    images = torch.rand(2, 64, 80, 3, generator=torch.Generator().manual_seed(1))
    out = model.encode_image(images)
    vm = model.model.vision_model
    pooled = vm.post_layernorm(out.last_hidden_state[:, 0].to(vm.post_layernorm.weight.dtype))
    style = fake_csd()["module.last_layer_style"]
    torch.testing.assert_close(out.image_embeds.float(), pooled.float() @ style, rtol=1e-4, atol=1e-5)


def test_content_head_and_no_overwrite(csd_pth, tmp_path):
    from safetensors.torch import load_file
    from scripts.convert_csd import main
    dst = tmp_path / "csd_content.safetensors"
    main([str(csd_pth), str(dst), "--head", "content"])
    torch.testing.assert_close(load_file(dst)["visual.proj"], fake_csd()["module.last_layer_content"])
    with pytest.raises(FileExistsError, match="already exists"):
        main([str(csd_pth), str(dst)])


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_is_refused_and_runs_nothing(tmp_path):
    from dreamstyle.csd_checkpoint import convert
    marker = tmp_path / "marker"
    torch.save({"model_state_dict": _Planted(str(marker))}, tmp_path / "evil.pth")
    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "payload": _Planted(str(marker))}, tmp_path / "evil2.pth")
    for src in (tmp_path / "evil.pth", tmp_path / "evil2.pth"):
        with pytest.raises(Exception):
            convert(str(src), str(tmp_path / "out.safetensors"))
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_a_non_csd_file_is_named(tmp_path):
    from dreamstyle.csd_checkpoint import convert
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a CSD checkpoint"):
        convert(str(tmp_path / "other.pth"), str(tmp_path / "o.safetensors"))
