"""The training memory plan against the device bytes measured (training_memory_meter.py) during real steps
of ComfyUI's WanModel (random init, small dims), bf16/fp32/fp8 bases, with and without checkpointing (block
and sublayer granularity) and block swap. The plan counts the activations structurally (per sub-layer, see
dreamstyle/training_memory_plan.py) for an attention kernel that keeps O(tokens) (what ComfyUI runs on a GPU:
pytorch SDPA, flash, xformers, sage); the steps here run ComfyUI's pytorch attention, whose CPU kernel keeps
the same (ComfyUI's CPU default, sub-quadratic attention, keeps every head's token x token probabilities).
The bench (bench/dreamstyle_training.py) checks the plan on another width, FFN, rank and block count."""
import pytest
import torch

TOLERANCE = 0.10
MEASURED = {}


def wan(dim, ffn, layers, dtype):
    import comfy.ldm.wan.model as wan_model
    import comfy.ops

    def build(dt, ops):
        return wan_model.WanModel(model_type="i2v", in_dim=36, out_dim=16, dim=dim, ffn_dim=ffn, num_heads=dim // 32,
                                  num_layers=layers, text_dim=4096, freq_dim=256, operations=ops, dtype=dt)
    torch.manual_seed(0)
    model = build(None, comfy.ops.disable_weight_init)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    if dtype != torch.float32:  # as UNETLoader loads a bf16 file or weight_dtype fp8: manual-cast ops
        stored = build(dtype, comfy.ops.manual_cast)
        stored.load_state_dict(model.state_dict())
        model = stored
    return model


@pytest.fixture
def efficient_attention(comfy, monkeypatch):
    """ComfyUI's Wan blocks on pytorch SDPA (as on a GPU) instead of the CPU's sub-quadratic attention."""
    import comfy.ldm.modules.attention as attention
    import comfy.ldm.wan.model as wan_model
    monkeypatch.setattr(wan_model, "optimized_attention", attention.attention_pytorch)


@pytest.fixture(scope="module")
def dataset(comfy, tmp_path_factory):
    from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
    folder = str(tmp_path_factory.mktemp("ds_mem") / "pairs")
    build_synthetic_benchmark(folder, scenes=2, styles=["palette"], frames=17, height=128, width=192, refs=1,
                              heldout=0.0, seed=0)
    return folder


def _toy_path():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "unit", "dreamstyle_training"))


@pytest.mark.slow
@pytest.mark.parametrize("dtype,checkpointing,swap,offload,opt,granularity", [
    (torch.float32, False, 0, False, False, "block"),
    (torch.float32, True, 1, False, False, "block"),
    (torch.float32, True, 1, False, False, "sublayer"),
    (torch.float8_e4m3fn, True, 2, False, False, "block"),
    (torch.float8_e4m3fn, True, 2, True, False, "block"),
    (torch.float8_e4m3fn, True, 2, True, True, "block"),
    (torch.float8_e4m3fn, True, 2, True, True, "sublayer"),
    (torch.bfloat16, True, 0, False, False, "block"),
    (torch.bfloat16, True, 0, False, False, "sublayer")])
def test_plan_matches_the_measured_peak(dataset, efficient_attention, tmp_path, dtype, checkpointing, swap, offload,
                                        opt, granularity):
    _toy_path()
    from toy_wan import toy_encoders
    from dreamstyle.training import DreamStyleTrainer, TrainConfig
    from dreamstyle.training_memory_meter import measured_peak
    from dreamstyle.training_memory_plan import WanShape, plan
    model = wan(160, 640, 3, dtype)
    cfg = TrainConfig(steps=2, rank=24, batch=1, ratio="0:1:0", gradient_checkpointing=checkpointing, block_swap=swap,
                      offload_activations=offload, optimizer_offload=opt, checkpoint_granularity=granularity)
    trainer = DreamStyleTrainer(model, toy_encoders(), dataset, cfg, str(tmp_path / "run"))
    trainer.data.encode_all()
    text_len = max(trainer.data.text(p.caption_ns).shape[0] for p in trainer.pairs)
    measured = measured_peak(trainer)
    planned = plan(WanShape.from_model(model), 17, 128, 192, rank=24,
                   base_dtype={torch.float32: "fp32", torch.bfloat16: "bf16"}.get(dtype, "fp8_e4m3fn"),
                   compute_dtype="fp32" if dtype == torch.float32 else "bf16", gradient_checkpointing=checkpointing,
                   block_swap=swap, prefetch=False, text_len=text_len, offload_activations=offload,
                   optimizer_offload=opt, granularity=granularity).peak
    MEASURED[(dtype, checkpointing, swap, offload, opt, granularity)] = measured
    assert abs(planned / measured - 1) <= TOLERANCE, (planned, measured)
    if offload and not opt:  # offloading the kept block inputs lowers the measured device peak
        assert measured < MEASURED[(dtype, checkpointing, swap, False, False, granularity)]
    if opt and granularity == "block":  # and AdamW's moments in CPU memory lower it further
        assert measured < MEASURED[(dtype, checkpointing, swap, offload, False, granularity)]
    if granularity == "sublayer":  # one sub-layer's activations at a time instead of the block's
        assert measured < MEASURED[(dtype, checkpointing, swap, offload, opt, "block")]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float8_e4m3fn])
def test_sublayer_checkpoints_give_the_lora_gradients_of_block_checkpoints(dataset, tmp_path, dtype):
    """ComfyUI's WanAttentionBlock runs its own forward; sublayer checkpoints only wrap its self_attn,
    cross_attn and ffn: the LoRA gradients of one micro-batch are bit-identical to block checkpointing's."""
    _toy_path()
    from test_block_swap import lora_grads
    from toy_wan import toy_encoders
    from dreamstyle.training import DreamStyleTrainer, TrainConfig
    model = wan(64, 128, 2, dtype)
    grads = {}
    for granularity in ("block", "sublayer"):
        cfg = TrainConfig(steps=1, rank=8, batch=1, ratio="0:1:0", gradient_checkpointing=True, block_swap=1,
                          checkpoint_granularity=granularity)
        grads[granularity], _ = lora_grads(DreamStyleTrainer(model, toy_encoders(), dataset, cfg,
                                                             str(tmp_path / granularity)))
    assert any(g.abs().sum() > 0 for g in grads["block"])
    assert all(torch.equal(a, b) for a, b in zip(grads["block"], grads["sublayer"]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_saved_activations_per_sublayer_are_the_plans(comfy, efficient_attention, dtype):
    """What autograd saves in ComfyUI's WanAttentionBlock with the token LoRA, storage by storage
    (saved_tensors_hooks), per sub-layer and between them, is what training_memory_plan counts per token."""
    import comfy.ldm.wan.model as wan_model
    import comfy.ops
    from dreamstyle.token_lora import TokenLoRAHooks
    from dreamstyle.training import new_loras
    from dreamstyle.training_memory_plan import ACT_CONTEXT, GLUE, sublayer_elements
    dim, ffn, rank, frames, h, w, text = 128, 512, 4, 2, 32, 36, 40
    torch.manual_seed(0)
    model = wan_model.WanModel(model_type="i2v", in_dim=36, out_dim=16, dim=dim, ffn_dim=ffn, num_heads=dim // 32,
                               num_layers=1, text_dim=4096, freq_dim=256, operations=comfy.ops.disable_weight_init)
    model.to(dtype).requires_grad_(False)
    hooks = TokenLoRAHooks(new_loras(model, rank))
    hooks.attach(model)
    block, tokens = model.blocks[0], frames * (h // 2) * (w // 2)
    x = torch.randn(1, tokens, dim, dtype=dtype, requires_grad=True)  # the LoRA of earlier blocks: x needs grad
    e, context = torch.randn(1, 6, dim, dtype=dtype), torch.randn(1, 257 + text, dim, dtype=dtype)
    freqs = model.rope_embedder(torch.zeros(1, tokens, 3)).movedim(1, 2)  # rope of that shape (values unused)
    inputs = {t.untyped_storage().data_ptr() for t in [x, e, context, freqs, *model.parameters()]}
    where, saved = ["between"], {}
    for name in ("self_attn", "cross_attn", "ffn"):
        sub = getattr(block, name)
        sub.register_forward_pre_hook(lambda m, a, n=name: where.__setitem__(0, n))
        sub.register_forward_hook(lambda m, a, o: where.__setitem__(0, "between"))

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in inputs:
            saved.setdefault(storage.data_ptr(), (where[0], storage.nbytes()))
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), hooks.routing(torch.ones(frames, dtype=torch.long),
                                                                                   tokens // frames):
        block(x, e, freqs, context, context_img_len=257)
    measured = {}
    for group, nbytes in saved.values():
        measured[group] = measured.get(group, 0) + nbytes / dtype.itemsize / tokens
    subs = sublayer_elements(dim, ffn, rank, dtype.itemsize)
    planned = {"self_attn": subs["self_attn"][0] + dim,            # + its input (the LoRA's down-projection keeps it)
               "cross_attn": subs["cross_attn"][0] + ACT_CONTEXT * dim * (257 + text) / tokens,
               "ffn": subs["ffn"][0] + dim,
               "between": (GLUE - 2) * dim}                       # GLUE counts the self-attention's and FFN's inputs
    assert measured.keys() == planned.keys()
    # not planned: the norms' per-token statistics (a few fp32 values a token) and the token LoRA's up matrices
    # gathered per frame (2 frames here): 1.5-3 % of each group at dim 128, less at any real width
    for group in planned:
        assert planned[group] == pytest.approx(measured[group], rel=0.05), (group, planned, measured)


def test_the_shipped_training_workflow_fits_a_24gb_card_by_the_plan(comfy):
    """workflows/dreamstyle_train_ct_sft loads the 14B base as fp8 (the 24 GB setting of the inference workflows);
    its trainers' memory settings must plan under 24 GB at 480x832x81 with the workflow's rank (shapes only)."""
    import json
    import os
    from dreamstyle.training_memory_plan import WanShape, plan
    from scripts.fixtures.wan import released_i2v_14b
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    api = json.load(open(os.path.join(root, "workflows", "api", "dreamstyle_train_ct_sft.json")))
    dtypes = {n["inputs"]["weight_dtype"] for n in api.values() if n["class_type"] == "UNETLoader"}
    assert dtypes == {"fp8_e4m3fn"}
    shape = WanShape.from_model(released_i2v_14b())
    trainers = [n["inputs"] for n in api.values() if n["class_type"] == "DreamStyleTrainTokenLoRA"]
    assert len(trainers) == 2
    for t in trainers:
        p = plan(shape, 81, 480, 832, rank=t["rank"], base_dtype="fp8_e4m3fn", block_swap=t["block_swap"],
                 gradient_checkpointing=t["gradient_checkpointing"], offload_activations=t["offload_activations"],
                 optimizer_offload=t["optimizer_offload"], granularity=t["checkpoint_granularity"])
        assert p.peak < 23e9, (t, p.report())
