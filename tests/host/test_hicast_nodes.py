"""HiCAST nodes in the real ComfyUI (in process, CPU) on the tiny SD1.5 fixture."""
import importlib
import logging
import os

import pytest
import torch


@pytest.fixture(scope="module")
def hc(unistyle, tiny_models):
    module = importlib.import_module("unistyle_pack.nodes.hicast")
    import folder_paths
    folder_paths.add_model_folder_path(module.ADAPTERS, os.path.join(tiny_models, "hicast_adapters"), is_default=True)
    folder_paths.add_model_folder_path(module.LOSS_NETS, os.path.join(tiny_models, "hicast_loss_nets"), is_default=True)
    return module


@pytest.fixture(scope="module")
def sd15(hc, tiny_models):
    import comfy.sd
    import comfy.utils
    model = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_sd15_unet.safetensors"))
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_sd15_taesd.safetensors")))
    return model, vae


def run(node, **kw):
    return node.execute(**kw).result


def load(hc, name):
    return run(hc.HiCASTAdapterLoader, adapter_name=name)[0]


def photo(h=64, w=64, seed=0):
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(seed))


def sample(model, positive, negative, frames=1, size=32, seed=0):
    import nodes
    latent = {"samples": torch.zeros(frames, 4, size // 8, size // 8)}
    return nodes.common_ksampler(model, seed, 2, 2.0, "euler", "normal", positive, negative, latent)[0]["samples"]


def style_cond(hc, style_scale=1.0):
    return run(hc.HiCASTStyleConditioning, style_encoder=load(hc, "tiny_sd15_style_encoder.safetensors"),
               style_image=photo(seed=3), style_scale=style_scale)


def test_sd15_fixture_is_detected_as_sd15(sd15):
    model, vae = sd15
    assert type(model.model.model_config).__name__ == "SD15"
    assert vae.latent_channels == 4


def test_edge_and_smoothing_nodes_keep_size(hc):
    clip = photo(40, 56).repeat(3, 1, 1, 1)
    edges = run(hc.HiCASTEdgeMap, image=clip, method="canny", low_threshold=50, high_threshold=100, soft_sigma=1.5)[0]
    soft = run(hc.HiCASTEdgeMap, image=clip, method="soft_edge", low_threshold=50, high_threshold=100, soft_sigma=1.5)[0]
    assert edges.shape == soft.shape == clip.shape
    smooth = run(hc.HiCASTTemporalSmooth, maps=edges, frames=clip, strength=0.7, motion_threshold=0.04)[0]
    assert smooth.shape == clip.shape


def test_depth_node_names_the_folder_when_none_installed(hc):
    with pytest.raises(ValueError, match="depth_model: no model .* in models/hicast_depth"):
        run(hc.HiCASTDepthMap, image=photo(), depth_model=hc.NONE_INSTALLED, resolution=64)


def test_weights_zero_and_scale_zero_give_the_unpatched_model_exactly(hc, sd15):
    model, _ = sd15
    pos, neg = style_cond(hc)
    edge = load(hc, "tiny_sd15_edge_adapter.safetensors")
    maps = run(hc.HiCASTEdgeMap, image=photo(32, 32), method="canny", low_threshold=50, high_threshold=100, soft_sigma=1.5)[0]
    off = run(hc.HiCASTApplyStyleAdapters, model=model, adapter_1=edge, map_1=maps, weight_1=0.0, style_scale=0.0,
              style_encoder=load(hc, "tiny_sd15_style_encoder.safetensors"), style_image=photo(seed=4))[0]
    assert off is not model and not off.model_options["transformer_options"].get("patches")
    base = sample(model, pos, neg)
    assert torch.equal(sample(off, pos, neg), base)
    on = run(hc.HiCASTApplyStyleAdapters, model=model, adapter_1=edge, map_1=maps, weight_1=1.0, style_scale=0.0)[0]
    styled = run(hc.HiCASTApplyStyleAdapters, model=model, style_scale=1.0,
                 style_encoder=load(hc, "tiny_sd15_style_encoder.safetensors"), style_image=photo(seed=4))[0]
    assert not torch.equal(sample(on, pos, neg), base)
    assert not torch.equal(sample(styled, pos, neg), base)


def test_map_of_another_size_is_resized_with_a_log_line(hc, sd15, caplog):
    model, _ = sd15
    pos, neg = style_cond(hc)
    edge = load(hc, "tiny_sd15_edge_adapter.safetensors")
    patched = run(hc.HiCASTApplyStyleAdapters, model=model, adapter_1=edge, map_1=photo(48, 40), weight_1=1.0,
                  style_scale=0.0)[0]
    with caplog.at_level(logging.WARNING, logger="hicast"):
        out = sample(patched, pos, neg, size=32)
    assert "is 40x48 but the latent grid 4x4 needs 32x32; resizing" in caplog.text
    assert out.shape == (1, 4, 4, 4)


def test_adapter_for_another_unet_width_is_refused_naming_the_layer(hc, sd15):
    model, _ = sd15
    full = load(hc, "sd15_full_width_edge_adapter.safetensors")
    with pytest.raises(ValueError, match=r"level 1 feature has 640 channels but the UNet layer input_blocks\.3 has 320"):
        run(hc.HiCASTApplyStyleAdapters, model=model, adapter_1=full, map_1=photo(32, 32), weight_1=1.0, style_scale=0.0)


@pytest.mark.parametrize("style", [torch.rand(1, 32, 32, 1), torch.rand(1, 32, 32, 4)], ids=["grey", "rgba"])
def test_grey_and_rgba_style_images_are_converted(hc, sd15, style):
    model, _ = sd15
    enc = load(hc, "tiny_sd15_style_encoder.safetensors")
    pos, neg = run(hc.HiCASTStyleConditioning, style_encoder=enc, style_image=style, style_scale=1.0)
    patched = run(hc.HiCASTApplyStyleAdapters, model=model, style_scale=1.0, style_encoder=enc, style_image=style)[0]
    assert pos[0][0].shape == (1, 2, 768)
    assert torch.isfinite(sample(patched, pos, neg)).all()


def test_zero_initialised_temporal_layers_leave_video_output_bit_identical(hc, sd15):
    from unistyle_pack.hicast.temporal_layers import TemporalLayers
    model, _ = sd15
    pos, neg = style_cond(hc)
    fresh = hc.hicast_module("temporal_layers", "fresh", TemporalLayers([320, 320]), "video")
    video = run(hc.HiCASTApplyTemporalLayers, model=model, temporal_layers=fresh)[0]
    assert torch.equal(sample(video, pos, neg, frames=3), sample(model, pos, neg, frames=3))
    trained = run(hc.HiCASTApplyTemporalLayers, model=model,
                  temporal_layers=load(hc, "tiny_sd15_temporal_layers.safetensors"))[0]
    assert not torch.equal(sample(trained, pos, neg, frames=3), sample(model, pos, neg, frames=3))


def test_tiny_clip_loader_gives_sd15_text_conditioning(hc, sd15, test_nodes):
    import nodes
    clip = run(test_nodes.TinyCLIPLoader, clip_name="tiny_clip_l.safetensors")[0]
    assert type(clip.tokenizer).__name__ == "SD1Tokenizer"
    oil, ink = (nodes.CLIPTextEncode().encode(clip, text)[0] for text in ("an oil painting", "an ink drawing"))
    assert oil[0][0].shape == (1, 77, 768) and "pooled_output" in oil[0][1]
    assert not torch.equal(oil[0][0], ink[0][0])
    model, _ = sd15
    assert not torch.equal(sample(model, oil, ink), sample(model, ink, oil))


def test_training_nodes_write_loadable_files(hc, tiny_models):
    import folder_paths
    import nodes
    with torch.inference_mode():  # loaded as the server loads it: inference-mode weights
        model = nodes.UNETLoader().load_unet("tiny_sd15_unet.safetensors", "default")[0]
        vae = nodes.VAELoader().load_vae("tiny_sd15_taesd.safetensors")[0]
    folder = folder_paths.get_folder_paths(hc.ADAPTERS)[0]
    for f in os.listdir(folder):  # no checkpoint of an earlier run to resume from
        if f.startswith("test_hc_"):
            os.unlink(os.path.join(folder, f))
    pos, _ = style_cond(hc)
    content = photo(32, 32, seed=7).repeat(2, 1, 1, 1)
    maps = run(hc.HiCASTEdgeMap, image=content, method="soft_edge", low_threshold=0, high_threshold=0, soft_sigma=1.0)[0]
    with torch.inference_mode():  # as ComfyUI runs nodes
        adapter, encoder, loss = run(hc.HiCASTTrainAdapter, model=model, vae=vae, content_images=content, maps=maps,
                                     style_images=photo(seed=8), conditioning=pos, output_name="test_hc_adapter.safetensors",
                                     overwrite=False, map_type="edge", loss_net=hc.RANDOM_FEATURES, steps=2, batch_size=1,
                                     learning_rate=1e-4, seed=0)
        layers, loss_h = run(hc.HiCASTTrainTemporalLayers, model=model, vae=vae, video=content.repeat(2, 1, 1, 1),
                             conditioning=pos, output_name="test_hc_temporal.safetensors", overwrite=False, clip_frames=3,
                             steps=2, learning_rate=1e-4, lambda_local=0.1, seed=0)
    assert torch.isfinite(torch.tensor([loss, loss_h])).all()
    try:
        for name in ("test_hc_adapter.safetensors", "test_hc_adapter_style_encoder.safetensors", "test_hc_temporal.safetensors"):
            assert load(hc, name)["kind"] in ("style_adapter", "style_encoder", "temporal_layers")
    finally:
        for f in os.listdir(folder):
            if f.startswith("test_hc_"):
                os.unlink(os.path.join(folder, f))


class RedSpotPose(torch.nn.Module):
    """An 'ONNX body model' whose 18 heatmaps all peak where the image is red (input is BGR, v/256 - 0.5)."""

    def forward(self, x):
        red = torch.relu(x[:, 2:3] - x[:, 1:2] - x[:, 0:1])
        return torch.nn.functional.avg_pool2d(red, 8).repeat(1, 18, 1, 1)


def test_pose_node_runs_a_user_onnx_model_from_models_hicast_pose(hc, tmp_path):
    pytest.importorskip("onnx")
    import folder_paths
    folder = tmp_path / "hicast_pose"
    folder.mkdir()
    torch.onnx.export(RedSpotPose(), torch.rand(1, 3, 64, 64), str(folder / "red_spot.onnx"), input_names=["image"],
                      dynamic_axes={"image": {2: "h", 3: "w"}}, dynamo=False)
    folder_paths.add_model_folder_path(hc.POSE, str(folder))
    assert hc.pose_choices() == [hc.MEDIAPIPE, "red_spot.onnx"]
    image = torch.zeros(1, 64, 96, 3)
    image[0, 40:56, 64:80, 0] = 1.0  # a red square centred at (72, 48)
    args = dict(image=image, min_visibility=0.5, heatmap_threshold=0.1, detect_resolution=64, stick_width=4)
    pose = run(hc.HiCASTPoseMap, pose_model="red_spot.onnx", **args)[0]
    assert pose.shape == image.shape
    ys, xs = torch.nonzero(pose[0].sum(-1)).T.float()
    assert abs(xs.mean().item() - 72) <= 8 and abs(ys.mean().item() - 48) <= 8 and xs.max() - xs.min() <= 12
    with pytest.raises(ValueError, match="pose_model: 'missing.onnx' is not in models/hicast_pose"):
        run(hc.HiCASTPoseMap, pose_model="missing.onnx", **args)


def loaded_sd15(tiny_models, dtype=None, vae_dtype=None):
    """The tiny SD1.5 UNet and VAE loaded as the server loads them (inference-mode weights), in the given dtypes."""
    import comfy.sd
    import comfy.utils
    with torch.inference_mode():
        model = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_sd15_unet.safetensors"),
                                              model_options={} if dtype is None else {"dtype": dtype})
        vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_sd15_taesd.safetensors")),
                           dtype=vae_dtype)
    return model, vae


def train_adapter(hc, model, vae, name, steps=2, style=None, **kw):
    import folder_paths
    pos, _ = style_cond(hc)
    content = photo(32, 32, seed=7).repeat(2, 1, 1, 1)
    args = dict(model=model, vae=vae, content_images=content, maps=content, conditioning=pos,
                style_images=photo(32, 32, seed=8) if style is None else style, output_name=name, overwrite=True,
                map_type="edge", loss_net="tiny_vgg19_layout.safetensors", steps=steps, batch_size=2,
                learning_rate=1e-3, seed=0)
    args.update(kw)
    folder = folder_paths.get_folder_paths(hc.ADAPTERS)[0]
    before = set(os.listdir(folder))
    try:
        with torch.inference_mode():  # as ComfyUI runs nodes
            return run(hc.HiCASTTrainAdapter, **args)
    finally:
        for f in set(os.listdir(folder)) - before:  # what this run wrote
            os.unlink(os.path.join(folder, f))


def snapshot(module):
    return {k: (v.dtype, v.clone()) for k, v in module.state_dict().items()}


def same(module, snap):
    now = module.state_dict()
    return set(now) == set(snap) and all(now[k].dtype == d and torch.equal(now[k], v) for k, (d, v) in snap.items())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_unet_inference_and_training_through_apply_model(hc, tiny_models, dtype):
    """The UNet stored in fp16 / bf16: HiCAST inference samples and 2 training steps run; apply_model casts the
    inputs to the model's compute dtype (on this CPU ComfyUI computes fp16 weights in fp32 via manual cast, bf16
    natively: the dtype seen inside the UNet is the one apply_model chose, never a mismatch)."""
    import comfy.patcher_extension
    model, vae = loaded_sd15(tiny_models, dtype=dtype, vae_dtype=torch.bfloat16)
    assert model.model.get_dtype() == dtype
    compute = model.model.manual_cast_dtype or dtype
    seen = []
    watched = model.clone()
    watched.set_model_input_block_patch(lambda h, opts: (seen.append(h.dtype), h)[1])
    pos, neg = style_cond(hc)
    edge = load(hc, "tiny_sd15_edge_adapter.safetensors")
    styled = run(hc.HiCASTApplyStyleAdapters, model=watched, adapter_1=edge, map_1=photo(32, 32), weight_1=1.0,
                 style_scale=1.0, style_encoder=load(hc, "tiny_sd15_style_encoder.safetensors"), style_image=photo(seed=4))[0]
    assert torch.isfinite(sample(styled, pos, neg)).all()
    assert seen and set(seen) == {compute}
    seen.clear()
    calls = []

    def apply_model_wrapper(executor, *args, **kwargs):
        calls.append(args[0].dtype)
        return executor(*args, **kwargs)
    watched.add_wrapper(comfy.patcher_extension.WrappersMP.APPLY_MODEL, apply_model_wrapper)
    unet_before, vae_before = snapshot(model.model.diffusion_model), snapshot(vae.first_stage_model)
    _, _, loss = train_adapter(hc, watched, vae, f"test_hc_{str(dtype)[6:]}.safetensors")
    assert torch.isfinite(torch.tensor(loss))
    assert len(calls) == 2 and set(seen) == {compute}  # the wrapper and the patch saw every training base call
    assert same(model.model.diffusion_model, unet_before)       # the shared UNet is untouched
    assert same(vae.first_stage_model, vae_before)              # the bf16 VAE is untouched (still bf16)
    assert all(p.dtype == torch.bfloat16 for p in vae.first_stage_model.parameters())
    assert model.model.diffusion_model.input_blocks[0][0].weight.is_inference()  # not swapped for copies


def test_trainer_refuses_to_overwrite_and_resume_checks_the_job(hc, tiny_models):
    import folder_paths
    from unistyle_pack.hicast.checkpoint import save_checkpoint
    model, vae = loaded_sd15(tiny_models)
    folder = folder_paths.get_folder_paths(hc.ADAPTERS)[0]
    existing = os.path.join(folder, "test_hc_exists.safetensors")
    open(existing, "wb").write(b"precious")
    try:
        with pytest.raises(ValueError, match="output_name: models/hicast_adapters/test_hc_exists.safetensors already "
                                             "exists; choose a new name or turn on 'overwrite'"):
            train_adapter(hc, model, vae, "test_hc_exists.safetensors", overwrite=False)
        assert open(existing, "rb").read() == b"precious"
    finally:
        os.unlink(existing)
    resume = os.path.join(folder, "test_hc_job" + hc.RESUME_EXT)
    save_checkpoint(resume, {"step": 1}, job={"trainer": "style_adapter", "seed": 5})
    assert "test_hc_job" + hc.RESUME_EXT not in folder_paths.get_filename_list(hc.ADAPTERS)  # never listed as a model
    with pytest.raises(ValueError, match=r"different training job \(.*seed: 5 in the file, 0 now"):
        train_adapter(hc, model, vae, "test_hc_job.safetensors")
    assert os.path.exists(resume)  # refused, not replaced
    os.unlink(resume)
    for evil in ("/tmp/evil.safetensors", "../evil.safetensors"):
        with pytest.raises(ValueError, match="output_name: expected a plain file name"):
            train_adapter(hc, model, vae, evil)


def test_changing_the_second_style_changes_what_the_trainer_learns(hc, tiny_models):
    model, vae = loaded_sd15(tiny_models)
    styles = torch.cat([photo(32, 32, seed=8), photo(32, 32, seed=9)])
    other = torch.cat([photo(32, 32, seed=8), 1 - photo(32, 32, seed=9)])
    a = train_adapter(hc, model, vae, "test_hc_style_a.safetensors", steps=1, style=styles)[2]
    b = train_adapter(hc, model, vae, "test_hc_style_b.safetensors", steps=1, style=other)[2]
    assert a != b


class ClipOutput(dict):
    """A CLIP_VISION_OUTPUT as CLIPVisionEncode returns it (indexable by field)."""


@pytest.mark.parametrize("embeds, penultimate, model", [(768, 1024, "ViT-L/14"), (1024, 1280, "ViT-H/14")])
def test_clip_vision_outputs_of_real_encoder_widths(hc, embeds, penultimate, model):
    from unistyle_pack.hicast.style_encoder import StyleEncoder
    out = ClipOutput(image_embeds=torch.rand(1, embeds), penultimate_hidden_states=torch.rand(1, 257, penultimate))
    for source, width in (("image_embeds", embeds), ("penultimate", penultimate)):
        enc = hc.hicast_module("style_encoder", "enc", StyleEncoder(768, 2, (8,), 16, clip_dim=width, size=32,
                                                                      clip_source=source), "style")
        pos, _ = run(hc.HiCASTStyleConditioning, style_encoder=enc, style_image=photo(), clip_vision_output=out,
                     style_scale=1.0)
        assert pos[0][0].shape == (1, 2, 768)
        with pytest.raises(ValueError, match=f"connect a CLIP Vision Encode output"):
            run(hc.HiCASTStyleConditioning, style_encoder=enc, style_image=photo(), style_scale=1.0)
    wrong = ClipOutput(image_embeds=torch.rand(1, 1792 - embeds))
    enc = hc.hicast_module("style_encoder", "enc", StyleEncoder(768, 2, (8,), 16, clip_dim=embeds, size=32), "style")
    with pytest.raises(ValueError, match=f"expected image_embeds of width {embeds} \\({model}\\)"):
        run(hc.HiCASTStyleConditioning, style_encoder=enc, style_image=photo(), clip_vision_output=wrong, style_scale=1.0)


def test_trainer_builds_the_encoder_at_the_clip_width_of_its_input(hc, tiny_models):
    model, vae = loaded_sd15(tiny_models)
    styles = torch.cat([photo(32, 32, seed=8), photo(32, 32, seed=9)])
    out = ClipOutput(image_embeds=torch.rand(2, 768), penultimate_hidden_states=torch.rand(2, 257, 1024))
    _, encoder, loss = train_adapter(hc, model, vae, "test_hc_clip.safetensors", steps=1, style=styles,
                                     clip_vision_output=out, clip_source="penultimate")
    assert encoder["module"].clip_dim == 1024 and torch.isfinite(torch.tensor(loss))


def test_pack_modules_go_through_the_memory_manager(hc, sd15):
    import comfy.model_management
    model, _ = sd15
    pos, neg = style_cond(hc)
    edge = load(hc, "tiny_sd15_edge_adapter.safetensors")
    patched = run(hc.HiCASTApplyStyleAdapters, model=model, adapter_1=edge, map_1=photo(32, 32), weight_1=1.0,
                  style_scale=0.0)[0]
    sample(patched, pos, neg)
    loaded = [m.model for m in comfy.model_management.current_loaded_models]
    assert any(m is edge["patcher"] for m in loaded)


def test_semantic_segmentation_node_with_a_user_model_in_models_hicast_seg(hc, tmp_path):
    transformers = pytest.importorskip("transformers")
    import comfy.model_management
    import folder_paths
    torch.manual_seed(0)
    cfg = transformers.SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                                       num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16,
                                       num_labels=150)
    transformers.SegformerForSemanticSegmentation(cfg).save_pretrained(tmp_path / "hicast_seg" / "tiny-seg",
                                                                       safe_serialization=True)
    folder_paths.add_model_folder_path(hc.SEG, str(tmp_path / "hicast_seg"))
    assert "tiny-seg" in hc.segmentation_choices()
    out = run(hc.HiCASTSegmentationMap, image=photo(40, 56), threshold=0.5, seg_model="tiny-seg", resolution=64)[0]
    assert out.shape == (1, 40, 56, 3)
    patcher = hc.folder_model_patcher(hc.SEG, "tiny-seg", "seg_model", hc.segmentation_choices(), None, "")
    assert any(m.model is patcher for m in comfy.model_management.current_loaded_models)  # memory-managed, cached
    with pytest.raises(ValueError, match="seg_model: no model '../tiny-seg' in models/hicast_seg"):
        run(hc.HiCASTSegmentationMap, image=photo(), threshold=0.5, seg_model="../tiny-seg", resolution=64)


def test_depth_node_with_a_user_model_is_cached_and_memory_managed(hc, tmp_path):
    transformers = pytest.importorskip("transformers")
    import folder_paths
    torch.manual_seed(0)
    cfg = transformers.DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                 image_size=64, patch_size=16, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, backbone_out_indices=[0, 1, 2, 3], reassemble_factors=[4, 2, 1, 0.5])
    transformers.DPTForDepthEstimation(cfg).save_pretrained(tmp_path / "hicast_depth" / "tiny-dpt", safe_serialization=True)
    folder_paths.add_model_folder_path(hc.DEPTH, str(tmp_path / "hicast_depth"))
    first = run(hc.HiCASTDepthMap, image=photo(40, 56), depth_model="tiny-dpt", resolution=64)[0]
    patcher = hc.depth_patcher("tiny-dpt")
    second = run(hc.HiCASTDepthMap, image=photo(40, 56), depth_model="tiny-dpt", resolution=64)[0]
    assert first.shape == (1, 40, 56, 3) and torch.equal(first, second)
    assert hc.depth_patcher("tiny-dpt") is patcher  # loaded once, not per run


def test_the_received_model_samples_the_same_after_training(hc, tiny_models):
    """The trainer's autograd views are clones: once ComfyUI loads the original again, its weight functions and
    object patches are gone and it samples bit for bit as before."""
    model, vae = loaded_sd15(tiny_models)
    pos, neg = style_cond(hc)
    with torch.inference_mode():
        before = sample(model, pos, neg)
    train_adapter(hc, model, vae, "test_hc_after.safetensors", steps=1)
    with torch.inference_mode():
        assert torch.equal(sample(model, pos, neg), before)
    assert all(not getattr(m, "weight_function", []) for m in model.model.diffusion_model.modules())
