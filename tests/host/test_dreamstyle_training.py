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
    dataset = str(base / "pairs")
    build_synthetic_benchmark(dataset, scenes=3, styles=["palette", "ink"], frames=5, height=32, width=32, refs=2,
                              heldout=0.34)
    old = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(base / "output"))
    from unistyle_pack.nodes import dreamstyle_training as node
    from unistyle_pack.nodes import dreamstyle as ds
    yield {"model": model, "vae": vae, "clip": clip, "dataset": dataset, "node": node, "ds": ds, "tiny": test_nodes}
    folder_paths.set_output_directory(old)


def train(parts, **kw):
    args = dict(model=parts["model"], vae=parts["vae"], clip=parts["clip"], dataset_dir=parts["dataset"], stage="CT",
                steps=4, rank=4, lr=1e-3, batch=2, accumulation=1, ratio="1:2:1", seed=0, save_every=2,
                lora_name="test_dreamstyle_ct", precision="fp32", gradient_checkpointing=False)
    args.update(kw)
    return parts["node"].DreamStyleTrainTokenLoRA.execute(**args).result


@pytest.mark.slow
def test_node_trains_a_loadable_lora_and_leaves_the_base_untouched(parts):
    import folder_paths
    dm = parts["model"].get_model_object("diffusion_model")
    before = {k: v.clone() for k, v in dm.state_dict().items()}
    flags = [p.requires_grad for p in dm.parameters()]
    model, name, curve = train(parts, gradient_checkpointing=True)
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
    _, ct_name, _ = train(parts, lora_name="test_dreamstyle_ct2", steps=2)
    import folder_paths
    ct_sha = read_safetensors(folder_paths.get_full_path("loras", ct_name))[1]["sha256"]
    _, sft_name, _ = train(parts, stage="SFT", lora_name="test_dreamstyle_sft", steps=2, init_lora=ct_name, lr=5e-4)
    meta = read_safetensors(folder_paths.get_full_path("loras", sft_name))[1]
    assert meta["stage"] == "SFT" and meta["init_lora_sha256"] == ct_sha
    _, _, curve = train(parts, stage="SFT", lora_name="test_dreamstyle_sft", steps=4, init_lora=ct_name, lr=5e-4)
    assert read_safetensors(folder_paths.get_full_path("loras", sft_name))[1]["steps"] == "4"
    with pytest.raises(ValueError, match="init_lora"):
        train(parts, stage="SFT", lora_name="x", init_lora="no_such_lora.safetensors")
    with pytest.raises(ValueError, match="dataset_dir"):
        train(parts, dataset_dir="/no/such/folder")


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
