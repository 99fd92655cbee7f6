"""DreamStyle nodes in the real ComfyUI (in process, CPU) with the tiny Wan2.1-I2V fixtures."""
import os

import pytest
import torch

from dreamstyle.layout import FIRST_FRAME, STYLE_IMAGE, VIDEO
from dreamstyle.lora_file import token_lora_metadata, token_lora_tensors, write_safetensors_atomic
from dreamstyle.token_lora import TokenLoRA


@pytest.fixture(scope="module")
def wan(comfy, tiny_models, unistyle):
    import comfy.sd
    import comfy.utils
    model = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_wan21_i2v.safetensors"))
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"), return_metadata=True)
    from unistyle_pack.nodes import dreamstyle as ds
    return model, comfy.sd.VAE(sd=sd, metadata=meta), ds


def text_cond(seed):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 8, 4096, generator=g), {}]]


def video(frames=7, h=40, w=56, seed=0):
    return torch.rand(frames, h, w, 3, generator=torch.Generator().manual_seed(seed))


def condition(ds, vae, first=True, style=True, clip=True):
    import comfy.clip_vision
    cv = None
    if clip:
        cv = comfy.clip_vision.Output()
        cv["penultimate_hidden_states"] = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(4))
    return ds.DreamStyleConditioning.execute(
        text_cond(1), text_cond(2), vae, video(),
        style_image=torch.rand(1, 30, 30, 1) if style else None,            # grey, other size
        first_frame=torch.rand(1, 40, 56, 4) if first else None,            # RGBA
        clip_vision_output=cv).result


def sample(model, pos, neg, latent, steps=2, cfg=2.0, seed=0):
    import nodes
    return nodes.common_ksampler(model, seed, steps, cfg, "euler", "simple", pos, neg, latent)[0]


def write_lora(path, model, rank=4, seed=0, only=None, equal_ups=False, scale=0.05):
    dm = model.get_model_object("diffusion_model")
    from dreamstyle.token_lora import adapted_layer_names
    import comfy.utils
    g = torch.Generator().manual_seed(seed)
    layers = {}
    for name in adapted_layer_names(dm):
        out_f, in_f = comfy.utils.get_attr(dm, name).weight.shape
        down = torch.randn(rank, in_f, generator=g) * scale
        ups = torch.randn(3, out_f, rank, generator=g) * scale
        if equal_ups:
            ups = ups[:1].expand(3, -1, -1).clone()
        if only is not None:
            keep = torch.zeros(3, 1, 1)
            keep[only] = 1
            ups = ups * keep
        layers[name] = TokenLoRA.from_weights(down, ups, alpha=rank)
    write_safetensors_atomic(path, token_lora_tensors(layers), token_lora_metadata(rank))
    return layers


def loras_dir(models):
    d = os.path.join(models, "loras")
    os.makedirs(d, exist_ok=True)
    return d


def test_conditioning_sets_the_paper_layout(wan):
    model, vae, ds = wan
    pos, neg, latent, info = condition(ds, vae)
    # 7 frames -> 9 (4k+1) -> 3 latent frames; 40x56 -> 48x64 -> 6x8 latent
    assert latent["samples"].shape == (1, 16, 1 + 3 + 1, 6, 8)
    assert "7 to 9 frames" in info and "56x40 to 64x48" in info
    for c in (pos, neg):
        values = c[0][1]
        # ComfyUI feeds the model 1 - concat_mask: DreamStyle mask 1 on the first frame and style image
        seen_mask = 1.0 - values["concat_mask"]
        assert seen_mask[0, :, 0].eq(1).all() and seen_mask[0, :, 1:4].eq(0).all() and seen_mask[0, :, 4].eq(1).all()
        assert values["concat_latent_image"].shape == (1, 16, 5, 6, 8)
        assert values["model_conds"]["dreamstyle_frame_types"].cond.tolist() == [[FIRST_FRAME, VIDEO, VIDEO, VIDEO, STYLE_IMAGE]]
        assert values["clip_vision_output"]["penultimate_hidden_states"].shape == (1, 257, 1280)
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0, 1, 1, 1, 0]


def test_condition_frames_held_and_output_trimmed_to_input(wan):
    model, vae, ds = wan
    pos, neg, latent, _ = condition(ds, vae)
    out = sample(model, pos, neg, latent)
    # frames with noise_mask 0 end as their clean latents (held at add_noise(z, t) through sampling)
    torch.testing.assert_close(out["samples"][:, :, [0, 4]], latent["samples"][:, :, [0, 4]])
    assert not torch.allclose(out["samples"][:, :, 1:4], latent["samples"][:, :, 1:4])
    trimmed = ds.DreamStyleTrimLatent.execute(out).result[0]
    assert trimmed["samples"].shape == (1, 16, 3, 6, 8) and "noise_mask" not in trimmed
    images = ds.DreamStyleDecode.execute(vae, out).result[0]
    assert images.shape == (7, 40, 56, 3)


def test_strength_zero_is_bit_identical_and_nonzero_changes_output(wan, tiny_models):
    model, vae, ds = wan
    path = os.path.join(loras_dir(tiny_models), "test_token_lora.safetensors")
    write_lora(path, model)
    pos, neg, latent, _ = condition(ds, vae)
    base = sample(model, pos, neg, latent)["samples"]
    zero = ds.DreamStyleTokenLoRALoader.execute(model, "test_token_lora.safetensors", 0.0).result[0]
    assert torch.equal(sample(zero, pos, neg, latent)["samples"], base)
    patched = ds.DreamStyleTokenLoRALoader.execute(model, "test_token_lora.safetensors", 1.0).result[0]
    assert patched is not model and not torch.allclose(sample(patched, pos, neg, latent)["samples"], base)
    # the shared model was not edited: the base model still gives the base output
    assert torch.equal(sample(model, pos, neg, latent)["samples"], base)


def test_equal_up_token_lora_equals_plain_lora(wan, tiny_models):
    from safetensors.torch import save_file
    model, vae, ds = wan
    d = loras_dir(tiny_models)
    layers = write_lora(os.path.join(d, "test_equal_ups.safetensors"), model, equal_ups=True, seed=3)
    save_file({**{f"diffusion_model.{n}.lora_down.weight": l.down.detach() for n, l in layers.items()},
               **{f"diffusion_model.{n}.lora_up.weight": l.up[0].detach() for n, l in layers.items()}},
              os.path.join(d, "test_plain.safetensors"))
    pos, neg, latent, _ = condition(ds, vae)
    token = ds.DreamStyleTokenLoRALoader.execute(model, "test_equal_ups.safetensors", 0.8).result[0]
    plain = ds.DreamStyleTokenLoRALoader.execute(model, "test_plain.safetensors", 0.8).result[0]
    a, b = sample(token, pos, neg, latent)["samples"], sample(plain, pos, neg, latent)["samples"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("only,first,style,changes", [
    (STYLE_IMAGE, True, False, False),   # no style frame in the call: the style up is never used
    (STYLE_IMAGE, False, True, True),
    (FIRST_FRAME, False, True, False),   # no first frame in the call
    (FIRST_FRAME, True, False, True),
    (VIDEO, False, False, True),
])
def test_routing_follows_the_layout_of_the_call(wan, tiny_models, only, first, style, changes):
    model, vae, ds = wan
    name = f"test_only_{only}.safetensors"
    write_lora(os.path.join(loras_dir(tiny_models), name), model, only=only, seed=7, scale=0.2)
    pos, neg, latent, _ = condition(ds, vae, first=first, style=style)
    patched = ds.DreamStyleTokenLoRALoader.execute(model, name, 1.0).result[0]
    base = sample(model, pos, neg, latent, steps=1)["samples"]
    out = sample(patched, pos, neg, latent, steps=1)["samples"]
    assert torch.equal(out, base) != changes


def test_bad_inputs_are_named(wan, tiny_models):
    from safetensors.torch import save_file
    model, vae, ds = wan
    with pytest.raises(ValueError, match="video: expected an IMAGE batch"):
        ds.DreamStyleConditioning.execute(text_cond(1), text_cond(2), vae, torch.zeros(0, 32, 32, 3))
    d = loras_dir(tiny_models)
    save_file({"blocks.0.self_attn.q.lora_down.weight": torch.zeros(2, 64),
               "blocks.0.self_attn.q.lora_up.weight": torch.zeros(128, 2)}, os.path.join(d, "test_wrong_shape.safetensors"))
    with pytest.raises(ValueError, match=r"layer blocks\.0\.self_attn\.q does not fit"):
        ds.DreamStyleTokenLoRALoader.execute(model, "test_wrong_shape.safetensors", 1.0)
    save_file({"unet.down.0.lora_down.weight": torch.zeros(2, 64)}, os.path.join(d, "test_other.safetensors"))
    with pytest.raises(ValueError, match="matches no layer"):
        ds.DreamStyleTokenLoRALoader.execute(model, "test_other.safetensors", 1.0)
    pickle_path = os.path.join(d, "test_pickle.ckpt")
    open(pickle_path, "wb").write(b"\x80\x04")
    try:
        with pytest.raises(ValueError, match="not a .safetensors file"):
            ds.DreamStyleTokenLoRALoader.execute(model, "test_pickle.ckpt", 1.0)
    finally:
        os.remove(pickle_path)  # the shared fixture folder lists only safetensors LoRAs for other tests
    with pytest.raises(ValueError, match="lora_name: '../x.safetensors'|lora_name: '..' is not allowed"):
        ds.DreamStyleTokenLoRALoader.execute(model, "../x.safetensors", 1.0)
    with pytest.raises(ValueError, match="strength: expected a finite number"):
        ds.DreamStyleTokenLoRALoader.execute(model, "test_other.safetensors", float("nan"))
    with pytest.raises(ValueError, match="carries no DreamStyle layout"):
        ds.DreamStyleTrimLatent.execute({"samples": torch.zeros(1, 16, 2, 4, 4)})


@pytest.mark.parametrize("n,chunk,overlap", [(11, 5, 1), (13, 9, 3)])
def test_long_video_chains_each_chunk_from_the_output_frame_where_it_starts(wan, monkeypatch, n, chunk, overlap):
    """Chunk i's first-frame condition is chunk i-1's decoded output at the frame where chunk i's video starts."""
    model, vae, ds = wan
    firsts, decoded = [], []
    real_cond, real_decode = ds.dreamstyle_conditioning, ds.decode_to_input

    def recording_cond(positive, negative, vae_, video_, style, first, clip):
        firsts.append((video_.shape[0], None if first is None else first.clone()))
        return real_cond(positive, negative, vae_, video_, style, first, clip)

    def recording_decode(vae_, samples):
        decoded.append(real_decode(vae_, samples))
        return decoded[-1]

    monkeypatch.setattr(ds, "dreamstyle_conditioning", recording_cond)
    monkeypatch.setattr(ds, "decode_to_input", recording_decode)
    out = ds.DreamStyleLongVideo.execute(model, text_cond(1), text_cond(2), vae, video(n, 24, 40), chunk, overlap, 0,
                                         1, 1.0, "euler", "simple", style_image=torch.rand(1, 24, 40, 3)).result[0]
    assert out.shape == (n, 24, 40, 3)
    from dreamstyle.long_video import plan_chunks
    chunks = plan_chunks(n, chunk, overlap)
    assert [f[0] for f in firsts] == [c.frames for c in chunks]
    assert firsts[0][1] is None
    for i in range(1, len(chunks)):
        local = chunks[i].start - chunks[i - 1].start
        torch.testing.assert_close(firsts[i][1][0], decoded[i - 1][local].to(firsts[i][1].dtype))
    # frames only one chunk produced are that chunk's output, unchanged
    torch.testing.assert_close(out[:chunks[1].start], decoded[0][:chunks[1].start].to(out.dtype))
    with pytest.raises(ValueError, match="overlap: expected 1"):
        ds.DreamStyleLongVideo.execute(model, text_cond(1), text_cond(2), vae, video(n, 24, 40), chunk, 0, 0,
                                       1, 1.0, "euler", "simple")


def test_the_model_sees_the_paper_channels(wan):
    """At the patch embedding (after ComfyUI's concat_cond): mask 1 on the first frame and style image,
    0 on the video, and the condition channels are the clean latents (in Wan's latent normalisation)."""
    model, vae, ds = wan
    pos, neg, latent, _ = condition(ds, vae)
    seen = []
    dm = model.model.diffusion_model
    handle = dm.patch_embedding.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    try:
        sample(model, pos, neg, latent, steps=1)
    finally:
        handle.remove()
    x = seen[0]
    assert x.shape == (2, 36, 5, 6, 8)  # cond and uncond batched by CFG
    assert x[:, 16:20].amin(dim=(1, 3, 4)).tolist() == x[:, 16:20].amax(dim=(1, 3, 4)).tolist() == [[1, 0, 0, 0, 1]] * 2
    expected = model.model.latent_format.process_in(pos[0][1]["concat_latent_image"])
    torch.testing.assert_close(x[:, 20:].float(), expected.expand(2, -1, -1, -1, -1).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first,style,clip", [(False, False, False), (True, False, False), (False, True, True)])
def test_clip_features_are_passed_as_wan_image_to_video_passes_them(wan, first, style, clip):
    """Without CLIP-vision (text-only, first-frame-only) neither side carries clip_vision_output, so the
    I2V model gets no image tokens, as after the stock WanImageToVideo without one; with it, positive and
    negative both carry it, as WanImageToVideo does and Wan2.1-I2V's own sampler does (its unconditional
    pass keeps the image context: CFG then guides along the text, not along the style image)."""
    from comfy_extras.nodes_wan import WanImageToVideo
    model, vae, ds = wan
    pos, neg, _, _ = condition(ds, vae, first=first, style=style, clip=clip)
    cv = pos[0][1].get("clip_vision_output")
    stock_pos, stock_neg, _ = WanImageToVideo.execute(text_cond(1), text_cond(2), vae, 56, 40, 5, 1,
                                                      start_image=torch.rand(1, 40, 56, 3),
                                                      clip_vision_output=cv).result
    for ours, stock in ((pos, stock_pos), (neg, stock_neg)):
        assert ("clip_vision_output" in ours[0][1]) == ("clip_vision_output" in stock[0][1]) == clip
        if clip:
            assert ours[0][1]["clip_vision_output"] is stock[0][1]["clip_vision_output"]


def test_a_latent_from_another_conditioning_run_is_refused_with_the_packs_message(wan, tiny_models):
    model, vae, ds = wan
    write_lora(os.path.join(loras_dir(tiny_models), "test_token_lora.safetensors"), model)
    patched = ds.DreamStyleTokenLoRALoader.execute(model, "test_token_lora.safetensors", 1.0).result[0]
    pos, neg, _, _ = condition(ds, vae)                                        # 1 + 3 + 1 latent frames
    other = ds.DreamStyleConditioning.execute(text_cond(1), text_cond(2), vae, video(frames=13)).result[2]  # 4
    with pytest.raises(ValueError, match="connect the latent and the positive/negative of the same"):
        sample(patched, pos, neg, other, steps=1)


def test_without_the_lora_loader_a_wrong_base_or_latent_is_refused_by_the_conditioning(wan, tiny_models):
    """The check rides on the conditioning (a ComfyUI conditioning hook): the stock KSampler with the plain
    model still gets the pack's message, and a matching pair samples exactly as before."""
    import nodes
    model, vae, ds = wan
    pos, neg, latent, _ = condition(ds, vae)
    other = ds.DreamStyleConditioning.execute(text_cond(1), text_cond(2), vae, video(frames=13)).result[2]
    with pytest.raises(ValueError, match="latent_image: has 4 latent frames but the conditioning was built for 5"):
        sample(model, pos, neg, other, steps=1)
    fun = nodes.UNETLoader().load_unet("tiny_wan21_fun_control.safetensors", "default")[0]
    with pytest.raises(ValueError, match="model: DreamStyle needs a Wan2.1-I2V model.*WAN21_FunControl2V"):
        sample(fun, pos, neg, latent, steps=1)
    plain_pos = [[c[0], {k: v for k, v in c[1].items() if k != "hooks"}] for c in pos]
    plain_neg = [[c[0], {k: v for k, v in c[1].items() if k != "hooks"}] for c in neg]
    assert torch.equal(sample(model, pos, neg, latent)["samples"], sample(model, plain_pos, plain_neg, latent)["samples"])


def test_a_latent_of_another_run_with_the_same_frames_and_size_is_refused_before_sampling(wan):
    """Issue 12: the layout identity is compared where the sampler first sees latent and conditioning together,
    even when the other run has the same frame count and size (the model would otherwise run on mismatched
    condition frames without a word)."""
    model, vae, ds = wan
    pos_a, neg_a, latent_a, _ = condition(ds, vae)
    pos_b, neg_b, latent_b, _ = ds.DreamStyleConditioning.execute(
        text_cond(1), text_cond(2), vae, video(seed=7), style_image=torch.rand(1, 30, 30, 3),
        first_frame=torch.rand(1, 40, 56, 3)).result
    assert latent_a["samples"].shape == latent_b["samples"].shape
    with pytest.raises(ValueError, match="latent_image: comes from another DreamStyleConditioning run"):
        sample(model, pos_a, neg_a, latent_b, steps=1)
    with pytest.raises(ValueError, match="latent_image: comes from another DreamStyleConditioning run"):
        sample(model, pos_a, neg_b, latent_a, steps=1)          # a negative from another run
    # the same run's latent after another node (a plain copy loses the stamp): its held frames decide
    copied = dict(latent_a, samples=latent_a["samples"].clone())
    assert torch.equal(sample(model, pos_a, neg_a, copied, steps=1)["samples"],
                       sample(model, pos_a, neg_a, latent_a, steps=1)["samples"])
    with pytest.raises(ValueError, match="latent_image: holds other condition frames"):
        sample(model, pos_a, neg_a, dict(latent_b, samples=latent_b["samples"].clone()), steps=1)


def test_a_longer_latent_gets_the_packs_message_not_a_torch_error(wan):
    model, vae, ds = wan
    pos, neg, _, _ = ds.DreamStyleConditioning.execute(text_cond(1), text_cond(2), vae, video(frames=5)).result
    longer = ds.DreamStyleConditioning.execute(text_cond(1), text_cond(2), vae, video(frames=9)).result[2]
    with pytest.raises(ValueError, match="latent_image: has 3 latent frames but the conditioning was built for 2"):
        sample(model, pos, neg, longer, steps=1)
