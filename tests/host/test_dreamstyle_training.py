"""DreamStyleTrainTokenLoRA in the real ComfyUI (in process, CPU) with the tiny Wan2.1-I2V, tiny Wan VAE
and tiny UMT5 fixtures on a small synthetic benchmark."""
import os

import pytest
import torch

from dreamstyle.lora_file import read_safetensors


@pytest.fixture(scope="module")
def parts(comfy, tiny_models, unistyle, test_nodes, tmp_path_factory):
    import comfy.sd
    import comfy.utils
    import folder_paths
    from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
    model = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_wan21_i2v.safetensors"))
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"),
                                           return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)
    clip = test_nodes.TinyUMT5Loader.execute(clip_name="tiny_umt5.safetensors").result[0]
    base = tmp_path_factory.mktemp("ds_train_host")
    dataset = str(base / "output" / "pairs")  # datasets are read from ComfyUI's output folder
    build_synthetic_benchmark(dataset, scenes=3, styles=["palette", "ink"], frames=5, height=32, width=32, refs=2,
                              heldout=0.34)
    old = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(base / "output"))
    from unistyle_pack.nodes import dreamstyle_training as node
    from unistyle_pack.nodes import dreamstyle as ds
    yield {"model": model, "vae": vae, "clip": clip, "dataset": dataset, "node": node, "ds": ds, "tiny": test_nodes}
    folder_paths.set_output_directory(old)


def train(parts, **kw):
    args = dict(model=parts["model"], vae=parts["vae"], clip=parts["clip"], dataset_dir="pairs", stage="CT",
                steps=4, rank=4, lr=1e-3, batch=2, accumulation=1, ratio="1:2:1", seed=0, save_every=2,
                lora_name="test_dreamstyle_ct", precision="fp32", gradient_checkpointing=False,
                overwrite=True)  # the loras folder outlives a test run
    args.update(kw)
    return parts["node"].DreamStyleTrainTokenLoRA.execute(**args).result


@pytest.mark.slow
def test_node_trains_a_loadable_lora_and_leaves_the_base_untouched(parts):
    import folder_paths
    dm = parts["model"].get_model_object("diffusion_model")
    before = {k: v.clone() for k, v in dm.state_dict().items()}
    flags = [p.requires_grad for p in dm.parameters()]
    model, name, curve, plan = train(parts, gradient_checkpointing=True)
    assert "DreamStyle training memory plan" in plan and "fits" in plan
    assert all(torch.equal(before[k], v) for k, v in dm.state_dict().items())  # base bit-identical
    assert [p.requires_grad for p in dm.parameters()] == flags
    path = folder_paths.get_full_path("loras", name)
    tensors, meta = read_safetensors(path)
    assert meta["format"] == "dreamstyle_token_lora" and meta["steps"] == "4" and meta["stage"] == "CT"
    assert curve.shape[0] == 1 and curve.shape[-1] == 3 and 0 <= float(curve.min()) <= float(curve.max()) <= 1
    assert os.path.exists(os.path.join(folder_paths.get_output_directory(), "dreamstyle_training",
                                       "test_dreamstyle_ct", "checkpoints", "latest.json"))
    # the node's model equals the stock loader path with the saved file
    loaded = parts["ds"].DreamStyleTokenLoRALoader.execute(parts["model"], name, 1.0).result[0]
    import nodes
    cond = nodes.CLIPTextEncode().encode(parts["clip"], "a red circle moving right")[0]
    video = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    p, n, latent, _ = parts["ds"].DreamStyleConditioning.execute(cond, cond, parts["vae"], video,
                                                                 style_image=video[:1]).result

    def sample(m):
        return nodes.common_ksampler(m, 0, 2, 1.0, "euler", "simple", p, n, latent)[0]["samples"]
    assert torch.equal(sample(model), sample(loaded))
    assert not torch.equal(sample(model), sample(parts["model"]))


@pytest.mark.slow
def test_sft_node_starts_from_the_ct_lora_and_resume_continues(parts):
    _, ct_name, _, _ = train(parts, lora_name="test_dreamstyle_ct2", steps=2)
    import folder_paths
    ct_sha = read_safetensors(folder_paths.get_full_path("loras", ct_name))[1]["sha256"]
    _, sft_name, _, _ = train(parts, stage="SFT", lora_name="test_dreamstyle_sft", steps=2, init_lora=ct_name, lr=5e-4)
    meta = read_safetensors(folder_paths.get_full_path("loras", sft_name))[1]
    assert meta["stage"] == "SFT" and meta["init_lora_sha256"] == ct_sha
    from unistyle_pack.nodes.guards import NodeInputError
    with pytest.raises(NodeInputError, match="lora_name: models/loras/test_dreamstyle_sft.safetensors already exists"):
        train(parts, stage="SFT", lora_name="test_dreamstyle_sft", steps=4, init_lora=ct_name, lr=5e-4, overwrite=False)
    with pytest.raises(ValueError, match="resume: .*lr: checkpoint 0.0005, now 0.001"):  # another job's checkpoint
        train(parts, stage="SFT", lora_name="test_dreamstyle_sft", steps=4, init_lora=ct_name)
    train(parts, stage="SFT", lora_name="test_dreamstyle_sft", steps=4, init_lora=ct_name, lr=5e-4)
    assert read_safetensors(folder_paths.get_full_path("loras", sft_name))[1]["steps"] == "4"
    with pytest.raises(NodeInputError, match="init_lora"):
        train(parts, stage="SFT", lora_name="x", init_lora="no_such_lora.safetensors")
    for bad in ("/no/such/folder", "../pairs", parts["dataset"]):
        with pytest.raises(NodeInputError, match="dataset_dir"):
            train(parts, dataset_dir=bad, lora_name="z")
    with pytest.raises(NodeInputError, match="init_lora"):
        train(parts, stage="SFT", lora_name="y", init_lora=folder_paths.get_full_path("loras", ct_name))
    # partial files (temporary names) never show in the loras list
    assert all(n.endswith(".safetensors") for n in folder_paths.get_filename_list("loras"))


@pytest.mark.slow
def test_fp8_base_with_block_swap_trains_the_lora_of_the_unswapped_run(parts, tiny_models):
    """UNETLoader weight_dtype fp8_e4m3fn: the base computes on per-call copies; swapping blocks changes where
    the weights come from, and sublayer checkpointing what is recomputed when, not the result (bit-identical
    LoRA files)."""
    import comfy.sd
    import folder_paths
    fp8 = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_wan21_i2v.safetensors"),
                                        model_options={"dtype": torch.float8_e4m3fn})
    dm = fp8.get_model_object("diffusion_model")
    assert next(dm.blocks.parameters()).dtype == torch.float8_e4m3fn
    before = {k: v.clone() for k, v in dm.state_dict().items()}
    files = {}
    for swap, granularity in ((0, "block"), (len(dm.blocks), "block"), (len(dm.blocks), "sublayer")):
        _, name, _, plan = train(parts, model=fp8, lora_name=f"test_fp8_swap{swap}{granularity}", steps=2,
                                 block_swap=swap, gradient_checkpointing=True, precision="bf16",
                                 checkpoint_granularity=granularity)
        assert f"block_swap {swap}" in plan and "base fp8_e4m3fn" in plan and f"granularity {granularity}" in plan
        files[swap, granularity] = read_safetensors(folder_paths.get_full_path("loras", name))[0]
    a, b, c = files.values()
    assert a.keys() == b.keys() == c.keys() and all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_up" in k)
    assert all(torch.equal(before[k], v) for k, v in dm.state_dict().items())


@pytest.mark.slow
def test_loss_decreases_on_the_real_tiny_wan(parts):
    """Core on ComfyUI's WanModel: fixed evaluation batches (same samples, noise, σ) before and after."""
    from dreamstyle.training import DreamStyleTrainer, TrainConfig
    patcher = parts["model"]
    enc = parts["node"].comfy_encoders(parts["vae"], parts["clip"], None, patcher.model.process_latent_in)
    import tempfile
    cfg = TrainConfig(steps=30, rank=8, lr=3e-3, batch=2, ratio="1:2:1")
    trainer = DreamStyleTrainer(patcher.model.diffusion_model, enc, parts["dataset"], cfg, tempfile.mkdtemp())
    fixed = range(500, 508)
    with torch.inference_mode(False):
        start = trainer.evaluate(fixed)
        trainer.run()
        end = trainer.evaluate(fixed)
    assert end < 0.9 * start, (start, end)


def test_training_encodes_style_images_as_the_inference_graph_does(parts):
    """Train = inference: the trainer's CLIP-vision features of a style image are CLIPVisionEncode's (crop
    center, as the shipped workflows use it) penultimate hidden states, the ones Wan's image branch reads."""
    import nodes
    clip_vision = parts["tiny"].TinyCLIPVisionLoader.execute(clip_name="tiny_clip_vision.safetensors").result[0]
    enc = parts["node"].comfy_encoders(parts["vae"], parts["clip"], clip_vision)
    image = torch.rand(1, 40, 56, 3, generator=torch.Generator().manual_seed(3))  # not square: the crop matters
    inference = nodes.CLIPVisionEncode().encode(clip_vision, image, "center")[0]["penultimate_hidden_states"]
    assert torch.equal(enc.clip_vision_encode(image), inference.float().cpu())
    uncropped = nodes.CLIPVisionEncode().encode(clip_vision, image, "none")[0]["penultimate_hidden_states"]
    assert not torch.equal(enc.clip_vision_encode(image), uncropped.float().cpu())
