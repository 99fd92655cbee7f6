"""The tiny fixtures are real architectures: ComfyUI's own loaders detect and run them."""
import os

import torch


def test_tiny_wan_i2v_detected_by_stock_loader(comfy, tiny_models):
    import comfy.sd
    patcher = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_wan21_i2v.safetensors"))
    assert type(patcher.model.model_config).__name__ == "WAN21_I2V"
    assert type(patcher.model).__name__ == "WAN21"
    dm = patcher.model.diffusion_model
    assert dm.patch_embedding.weight.shape[1] == 36 and dm.img_emb is not None and len(dm.blocks) == 2


def test_tiny_wan_vae_detected_and_round_trips_shapes(comfy, tiny_models):
    import comfy.sd
    import comfy.utils
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"), return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)
    assert type(vae.first_stage_model).__module__ == "comfy.ldm.wan.vae"
    assert vae.latent_channels == 16
    video = torch.rand(5, 32, 48, 3)
    z = vae.encode(video)
    assert tuple(z.shape) == (1, 16, 2, 4, 6)  # 4k+1 frames -> k+1 latent frames, /8 spatially
    assert tuple(vae.decode(z).shape[-4:]) == (5, 32, 48, 3)
