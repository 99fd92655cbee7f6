"""The token LoRA with torch.compile (ComfyUI's TorchCompileModel wrapper, CPU backends) and with ComfyUI's
memory manager (model_size budgeting, eject). No GPU here: the accounting is tested on the CPU."""
import os

import pytest
import torch

LORA = "tiny_dreamstyle_token_lora.safetensors"


@pytest.fixture(scope="module")
def env(comfy, tiny_models, unistyle):
    import comfy.sd
    import comfy.utils
    import nodes
    from unistyle_pack.nodes import dreamstyle as ds
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"),
                                           return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)

    def text(seed):
        return [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(seed)), {}]]

    video = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    cond = ds.DreamStyleConditioning.execute(text(1), text(2), vae, video, style_image=torch.rand(1, 32, 32, 3),
                                             first_frame=torch.rand(1, 32, 32, 3)).result[:3]
    base = nodes.UNETLoader().load_unet("tiny_wan21_i2v.safetensors", "default")[0]
    return ds, base, cond


def run(model, cond):
    import nodes
    pos, neg, latent = cond
    return nodes.common_ksampler(model, 0, 1, 2.0, "euler", "simple", pos, neg, latent)[0]["samples"]


def compiled(model, backend):
    from comfy_api.torch_helpers import set_torch_compile_wrapper  # what TorchCompileModel calls
    out = model.clone()
    set_torch_compile_wrapper(out, backend=backend)
    return out


@pytest.mark.slow
def test_compile_in_either_order_gives_the_uncompiled_lora_output_and_strength_needs_no_recompile(env, pack_node_ids):
    """As a ComfyUI server runs it: the pack's entrypoint awaited at startup (pack_node_ids), sampling in
    another thread (ComfyUI's prompt worker; torch 2.13 keeps dynamo's config per thread/context, so an option
    set while the pack was imported does not reach it)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as worker:
        worker.submit(either_order, *env).result()


def either_order(ds, base, cond):
    import torch._dynamo.testing
    torch.compiler.reset()
    expected_base = run(base, cond)
    expected = {s: run(ds.DreamStyleTokenLoRALoader.execute(base, LORA, s).result[0], cond) for s in (1.0, 0.5)}
    counter = torch._dynamo.testing.CompileCounter()
    # TorchCompileModel first, run once without the LoRA (ComfyUI's cached node output), then the LoRA
    comp = compiled(base, counter)
    torch.testing.assert_close(run(comp, cond), expected_base, rtol=1e-5, atol=1e-5)
    frames = []
    for s in (1.0, 0.5):
        got = run(ds.DreamStyleTokenLoRALoader.execute(comp, LORA, s).result[0], cond)
        torch.testing.assert_close(got, expected[s], rtol=1e-5, atol=1e-5)
        frames.append(counter.frame_count)
    assert frames[1] == frames[0]  # only the strength changed: no recompile
    torch.testing.assert_close(run(comp, cond), expected_base, rtol=1e-5, atol=1e-5)  # and back without it
    # the LoRA first, then TorchCompileModel
    got = run(compiled(ds.DreamStyleTokenLoRALoader.execute(base, LORA, 1.0).result[0], counter), cond)
    torch.testing.assert_close(got, expected[1.0], rtol=1e-5, atol=1e-5)


def test_routing_compiles_as_one_graph_and_a_new_strength_needs_no_recompile():
    import torch._dynamo.testing
    from dreamstyle.layout import FIRST_FRAME, STYLE_IMAGE, VIDEO
    from dreamstyle.token_lora import TokenLoRA
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    lora = TokenLoRA.from_weights(torch.randn(4, 12, generator=g), torch.randn(3, 10, 4, generator=g), 4.0)
    counter = torch._dynamo.testing.CompileCounter()
    fn = torch.compile(lambda out, x, ft, s: lora.add_to(out, x, ft, 3, s), backend=counter, fullgraph=True)
    x = torch.randn(2, 12, 12, generator=g)
    with torch.no_grad():
        for types in ([FIRST_FRAME, VIDEO, VIDEO, STYLE_IMAGE], [VIDEO, VIDEO, VIDEO, STYLE_IMAGE]):
            for strength in (1.0, 0.3, -2.0):
                ft, s = torch.tensor(types), torch.tensor(strength)
                got = fn(torch.zeros(2, 12, 10), x, ft, s)
                torch.testing.assert_close(got, lora.delta(x, ft, 3, strength), rtol=1e-5, atol=1e-5)
    assert counter.frame_count == 1  # fullgraph: no graph break; other layouts and strengths: no recompile


def test_lora_bytes_are_in_the_model_size_comfyui_budgets_with(env):
    import comfy.model_management
    ds, base, _ = env
    patched = ds.DreamStyleTokenLoRALoader.execute(base, LORA, 1.0).result[0]
    loras = patched.get_injections(next(iter(patched.injections)))[0].inject.__self__.hooks.loras
    dtype = getattr(base.model, "manual_cast_dtype", None) or base.model_dtype()
    extra = sum((l.down.numel() + l.up.numel()) * torch.empty((), dtype=dtype).element_size() for l in loras.values())
    assert extra > 0 and patched.model_size() == base.model_size() + extra
    assert comfy.model_management.LoadedModel(patched).model_memory() == base.model_size() + extra
    assert patched.clone().model_size() == patched.model_size()  # e.g. ModelSamplingSD3 after the loader
    stacked = ds.DreamStyleTokenLoRALoader.execute(patched, LORA, 0.5).result[0]
    assert stacked.model_size() == base.model_size() + extra  # the same file on itself: one LoRA at 1.5


def test_the_same_lora_stacked_on_itself_adds_its_strengths(env):
    ds, base, cond = env
    once = ds.DreamStyleTokenLoRALoader.execute(base, LORA, 1.5).result[0]
    twice = ds.DreamStyleTokenLoRALoader.execute(ds.DreamStyleTokenLoRALoader.execute(base, LORA, 1.0).result[0],
                                                 LORA, 0.5).result[0]
    torch.testing.assert_close(run(twice, cond), run(once, cond), rtol=1e-5, atol=1e-6)


def test_eject_drops_every_device_copy_and_leaves_the_loaded_lora_as_it_was(env):
    """A bf16-stored LoRA on a model computing in fp32 runs from a cached fp32 copy while loaded; unloading
    the model (what ComfyUI does before another model needs the memory) drops the copy and the hooks."""
    import comfy.model_management
    import comfy.utils
    from dreamstyle.token_lora import TokenLoRA
    from unistyle_pack.nodes.dreamstyle_patch import apply_token_lora
    ds, base, cond = env
    dm = base.get_model_object("diffusion_model")
    g = torch.Generator().manual_seed(3)
    loras = {}
    for name in ("blocks.0.self_attn.q", "blocks.1.ffn.0"):
        out_f, in_f = comfy.utils.get_attr(dm, name).weight.shape
        loras[name] = TokenLoRA.from_weights(torch.randn(4, in_f, generator=g) * 0.05,
                                             torch.randn(3, out_f, 4, generator=g) * 0.05, 4).to(torch.bfloat16)
    before = {n: (l.down.detach().clone(), l.up.detach().clone()) for n, l in loras.items()}
    patched = apply_token_lora(base, loras, 1.0)
    seen = []
    handle = comfy.utils.get_attr(dm, "blocks.1.ffn.0").register_forward_hook(
        lambda m, a, o: seen.append(sum(l.copies_bytes() for l in loras.values())))
    try:
        assert not torch.equal(run(patched, cond), run(base, cond))
    finally:
        handle.remove()
    assert max(seen) > 0  # the fp32 copies existed while sampling
    comfy.model_management.unload_all_models()
    assert sum(l.copies_bytes() for l in loras.values()) == 0
    assert all(not comfy.utils.get_attr(dm, n)._forward_hooks for n in loras)
    for n, l in loras.items():
        assert l.down.dtype == torch.bfloat16 and torch.equal(l.down, before[n][0]) and torch.equal(l.up, before[n][1])
        assert l.down.device == base.offload_device
