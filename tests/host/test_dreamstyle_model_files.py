"""DreamStyle on the model files users run: fp8 / scaled-fp8 / GGUF-like quantized bases, and the right base.

The token LoRA must compute in the model's compute dtype, never in its storage dtype. The measure is the
LoRA-induced change of one denoising step (sampler output with the LoRA minus without), under each weight
format, against the same change on the bf16 base, with a trained-like LoRA (up entries ~1e-3: under an
fp8 cast most of them round to zero). Tolerance: relative L2 error <= 0.2. The base's own fp8 rounding
moves the activations the LoRA sees, which costs 5-10 % here (measured); a LoRA cast to fp8 loses ~100 %.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from dreamstyle.lora_file import token_lora_metadata, token_lora_tensors, write_safetensors_atomic
from dreamstyle.token_lora import TokenLoRA, adapted_layer_names, linear_shape

I2V = "tiny_wan21_i2v.safetensors"
LORA = "test_trained_like_token_lora.safetensors"
TOLERANCE = 0.2


@pytest.fixture(scope="module")
def env(comfy, tiny_models, unistyle):
    import comfy.sd
    import comfy.utils
    from unistyle_pack.nodes import dreamstyle as ds
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"),
                                           return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)
    reference = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", I2V),
                                              model_options={"dtype": torch.bfloat16})
    dm = reference.get_model_object("diffusion_model")
    g = torch.Generator().manual_seed(0)
    layers = {}
    for name in adapted_layer_names(dm):
        out_f, in_f = linear_shape(comfy.utils.get_attr(dm, name))
        layers[name] = TokenLoRA.from_weights(torch.randn(16, in_f, generator=g) / in_f ** 0.5,
                                              torch.randn(3, out_f, 16, generator=g) * 1e-3, alpha=16)
    os.makedirs(os.path.join(tiny_models, "loras"), exist_ok=True)
    write_safetensors_atomic(os.path.join(tiny_models, "loras", LORA), token_lora_tensors(layers), token_lora_metadata(16))

    def text(seed):
        return [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(seed)), {}]]

    video = torch.rand(7, 40, 56, 3, generator=torch.Generator().manual_seed(0))
    cond = ds.DreamStyleConditioning.execute(text(1), text(2), vae, video, style_image=torch.rand(1, 40, 56, 3),
                                             first_frame=torch.rand(1, 40, 56, 3)).result[:3]
    return ds, reference, cond, layers


def lora_delta(ds, model, cond):
    import nodes
    pos, neg, latent = cond
    patched = ds.DreamStyleTokenLoRALoader.execute(model, LORA, 1.0).result[0]
    base = nodes.common_ksampler(model, 0, 1, 1.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    with_lora = nodes.common_ksampler(patched, 0, 1, 1.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    return (with_lora - base).float(), patched


def relative_error(delta, reference):
    return ((delta - reference).norm() / reference.norm()).item()


def scaled_fp8_file(src, dst):
    """A `*_fp8_scaled.safetensors` as users download them: each linear weight stored as fp8_e4m3fn of
    weight / scale_weight, plus the `scaled_fp8` marker ComfyUI detects."""
    from safetensors.torch import load_file, save_file
    sd = load_file(src)
    out = {}
    for k, w in sd.items():
        if k.startswith("blocks.") and k.endswith(".weight") and w.ndim == 2:
            scale = w.float().abs().amax().clamp_min(1e-12) / 448.0
            out[k] = (w.float() / scale).to(torch.float8_e4m3fn)
            out[k[:-len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            out[k] = w
    out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(out, dst)
    return dst


def quantized_ops():
    """A stand-in for ComfyUI-GGUF's ops (model_options custom_operations): each Linear keeps int8 codes
    packed 1-D plus per-row scales and dequantizes in forward; its `weight` is not an [out, in] matrix."""
    import comfy.ops

    class QuantizedOps(comfy.ops.manual_cast):
        class Linear(comfy.ops.manual_cast.Linear):
            def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs):
                w = state_dict.pop(prefix + "weight").float()
                bias = state_dict.pop(prefix + "bias", None)
                scale = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
                self.weight = torch.nn.Parameter((w / scale).round().to(torch.int8).flatten(), requires_grad=False)
                self.qscale = torch.nn.Parameter(scale, requires_grad=False)
                self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)

            def forward(self, x):
                w = self.weight.view(self.out_features, self.in_features).to(x.dtype) * self.qscale.to(x.dtype)
                return F.linear(x, w, None if self.bias is None else self.bias.to(x.dtype))

    return QuantizedOps


@pytest.mark.parametrize("weight_dtype", ["default", "fp8_e4m3fn", "fp8_e5m2"])
def test_lora_effect_under_unet_loader_weight_dtypes_matches_bf16(env, weight_dtype):
    import nodes
    ds, reference, cond, layers = env
    expected, _ = lora_delta(ds, reference, cond)
    model = nodes.UNETLoader().load_unet(I2V, weight_dtype)[0]
    delta, patched = lora_delta(ds, model, cond)
    err = relative_error(delta, expected)
    assert err <= TOLERANCE, f"{weight_dtype}: LoRA effect off by {err:.3f} (relative L2) from the bf16 base's"
    # the loaded LoRA was not cast: still fp32, still the file's values
    lora = patched.get_injections(next(iter(patched.injections)))[0].inject.__self__.hooks.loras
    for name, layer in layers.items():
        assert lora[name].up.dtype == torch.float32 and torch.equal(lora[name].up, layer.up.detach())


def test_lora_effect_on_a_scaled_fp8_file_matches_bf16(env, tiny_models, tmp_path):
    import comfy.sd
    ds, reference, cond, _ = env
    path = scaled_fp8_file(os.path.join(tiny_models, "diffusion_models", I2V), str(tmp_path / "x_fp8_scaled.safetensors"))
    model = comfy.sd.load_diffusion_model(path)
    q = model.get_model_object("diffusion_model").blocks[0].self_attn.q
    assert q.weight.dtype == torch.float8_e4m3fn and hasattr(q, "scale_weight")  # ComfyUI's scaled-fp8 ops
    delta, _ = lora_delta(ds, model, cond)
    expected, _ = lora_delta(ds, reference, cond)
    assert relative_error(delta, expected) <= TOLERANCE


def test_lora_effect_on_quantized_ops_matches_bf16_without_reading_the_weight(env, tiny_models):
    import comfy.sd
    ds, reference, cond, _ = env
    model = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", I2V),
                                          model_options={"custom_operations": quantized_ops()})
    q = model.get_model_object("diffusion_model").blocks[0].self_attn.q
    assert q.weight.ndim == 1 and q.weight.dtype == torch.int8  # not a matrix: shapes come from in/out_features
    delta, _ = lora_delta(ds, model, cond)
    expected, _ = lora_delta(ds, reference, cond)
    assert relative_error(delta, expected) <= TOLERANCE


def tiny_t2v_model():
    import comfy.ldm.wan.model as wan_model
    import comfy.sd
    net = wan_model.WanModel(model_type="t2v", in_dim=16, out_dim=16, dim=128, ffn_dim=256, num_heads=1,
                             num_layers=1, text_dim=4096, freq_dim=256, operations=torch.nn)
    return comfy.sd.load_diffusion_model_state_dict({k: v.detach() for k, v in net.state_dict().items()})


@pytest.mark.parametrize("which,kind", [("t2v", "WAN21_T2V"), ("tiny_wan21_fun_control.safetensors", "WAN21_FunControl2V"),
                                        ("tiny_sd15_unet.safetensors", None)])
def test_a_base_that_is_not_wan_i2v_is_refused_before_sampling(env, which, kind):
    import nodes
    ds, _, cond, _ = env
    model = tiny_t2v_model() if which == "t2v" else nodes.UNETLoader().load_unet(which, "default")[0]
    with pytest.raises(ValueError, match=r"model: DreamStyle needs a Wan2\.1-I2V model") as e:
        ds.DreamStyleTokenLoRALoader.execute(model, LORA, 1.0)
    if kind:
        assert kind in str(e.value)
    with pytest.raises(ValueError, match="DreamStyle needs a Wan2.1-I2V model"):
        ds.DreamStyleLongVideo.execute(model, *cond[:2], None, torch.rand(3, 16, 16, 3), 5, 1, 0, 1, 1.0, "euler",
                                       "simple")
