"""Block swap and fp8 bases in the training core (training_block_swap.py): the swapped blocks' weights are
copied to the compute device per call, and training gives the LoRA the unswapped run gives."""
import pytest
import torch
from toy_wan import ToyWan, toy_encoders

from dreamstyle.training import DreamStyleTrainer, TrainConfig
from dreamstyle.training_block_swap import StreamedBase, _alias

FAST = dict(rank=4, lr=3e-3, batch=2, gradient_checkpointing=True)


def trainer(dataset, run_dir, model, **kw):
    return DreamStyleTrainer(model, toy_encoders(), dataset, TrainConfig(**{**FAST, **kw}), run_dir)


def lora_grads(t):
    """The LoRA gradients of the first micro-batch (what a step's optimizer sees, before clipping)."""
    _, layout, x, target, ts, context, clip = t.micro_batch(0, 0)
    from dreamstyle.flow_matching import flow_matching_loss
    from dreamstyle.token_lora import TokenLoRAHooks, tokens_per_frame
    hooks = TokenLoRAHooks(t.loras)
    hooks.attach(t.model)
    try:
        with t._base_runner(t.model, True), torch.enable_grad():
            for p in t.params:
                p.requires_grad_(True)
            with hooks.routing(layout.frame_types(), tokens_per_frame(x.shape[3], x.shape[4])):
                flow_matching_loss(t.model(x, ts, context, clip_fea=clip), target, layout).backward()
    finally:
        hooks.detach()
    return [p.grad.clone() for p in t.params], t.streamer


def test_swapped_and_unswapped_training_give_identical_lora_gradients_and_loras(synthetic_dataset, tmp_path):
    model = ToyWan(layers=4)
    block_bytes = sum(p.nbytes for p in model.blocks[0].parameters())
    plain, streamer0 = lora_grads(trainer(synthetic_dataset, tmp_path / "a", model))
    swapped, streamer2 = lora_grads(trainer(synthetic_dataset, tmp_path / "b", model, block_swap=2))
    assert streamer0.copied_bytes == 0  # fp32 on the device: the weights are used in place
    # 2 swapped blocks, copied for the forward and again for the checkpointed recomputation
    assert streamer2.copied_bytes == 2 * 2 * block_bytes
    assert all(torch.equal(a, b) for a, b in zip(plain, swapped))
    runs = [trainer(synthetic_dataset, tmp_path / f"r{swap}", model, steps=3, block_swap=swap).run()
            for swap in (0, 2)]
    assert runs[0].losses == runs[1].losses
    a, b = (torch.cat([p.detach().flatten() for l in r.loras.values() for p in l.parameters()]) for r in runs)
    assert torch.equal(a, b)
    assert "forward" not in model.blocks[3].__dict__  # unwrapped after the run


def fp8_copy(model):
    fp8 = ToyWan(layers=len(model.blocks))
    fp8.load_state_dict(model.state_dict())
    return fp8.to(torch.float8_e4m3fn)


def test_fp8_base_trains_in_bf16_with_and_without_swap(synthetic_dataset, tmp_path):
    model = ToyWan(layers=3)
    fp8 = fp8_copy(model)
    weights = {k: v.clone() for k, v in fp8.state_dict().items()}
    # the bf16 base with the fp8 base's values: what the fp8 run must compute (e4m3fn -> bf16 is exact)
    reference = ToyWan(layers=3)
    reference.load_state_dict({k: v.to(torch.bfloat16) for k, v in fp8.state_dict().items()})
    reference.to(torch.bfloat16)
    runs = {}
    for name, m, swap in (("bf16", reference, 0), ("fp8", fp8, 0), ("fp8_swap", fp8, 2)):
        t = trainer(synthetic_dataset, tmp_path / name, m, steps=2, block_swap=swap)
        assert t.dtype == torch.bfloat16
        runs[name] = t.run()
    assert all(torch.isfinite(torch.tensor(r.losses)).all() for r in runs.values())
    assert runs["fp8"].losses == runs["bf16"].losses == runs["fp8_swap"].losses
    assert all(torch.equal(weights[k], v) for k, v in fp8.state_dict().items())  # never written
    assert all(p.dtype == torch.float8_e4m3fn for p in fp8.parameters())


def test_inference_tensors_train_through_a_zero_copy_alias(synthetic_dataset, tmp_path):
    """ComfyUI loads weights under inference_mode; the base is neither cloned nor refused by autograd."""
    with torch.inference_mode():
        model = ToyWan()
        model.load_state_dict(ToyWan().state_dict())
    assert next(model.parameters()).is_inference()
    ptrs = {p.data_ptr() for p in model.parameters()}
    t = trainer(synthetic_dataset, tmp_path / "inf", model, steps=2)
    result = t.run()
    assert torch.isfinite(torch.tensor(result.losses)).all()
    assert t.streamer.copied_bytes == 0 and {p.data_ptr() for p in model.parameters()} == ptrs
    w = next(model.parameters())
    a = _alias(w)
    assert not a.is_inference() and a.data_ptr() == w.data_ptr()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (prefetch runs on a side CUDA stream)")
def test_prefetch_on_gpu_gives_the_cpu_result():  # pragma: no cover - no GPU here
    model = ToyWan(layers=4).cuda()
    args = (torch.randn(1, 36, 3, 8, 8, device="cuda"), torch.tensor([500.0], device="cuda"),
            torch.randn(1, 4, 4096, device="cuda"))
    with torch.no_grad():
        ref = model(*args)
    place = __import__("dreamstyle.training_block_swap", fromlist=["place_blocks"]).place_blocks
    place(model, "cuda", 2)
    streamer = StreamedBase(model, "cuda", torch.float32, swapped=[2, 3])
    with torch.no_grad(), streamer.active():
        out = model(*args)
    assert streamer.prefetched >= 1 and torch.equal(out, ref)


def test_offloaded_block_inputs_train_the_same_lora(synthetic_dataset, tmp_path):
    """What checkpointing keeps (each block's inputs) goes to offload memory and comes back for the backward
    pass: the same LoRA (the device peak it saves is measured in tests/host/test_dreamstyle_training_memory.py)."""
    model = ToyWan(layers=4)
    runs = {}
    for offload in (False, True):
        runs[offload] = trainer(synthetic_dataset, tmp_path / f"o{offload}", model, steps=2, block_swap=2,
                                offload_activations=offload)
        runs[offload].run()
    a, b = (torch.cat([p.detach().flatten() for p in r.params]) for r in runs.values())
    assert torch.equal(a, b) and runs[False].history == runs[True].history
    assert runs[False].streamer.offloaded_bytes == 0 < runs[True].streamer.offloaded_bytes
    with pytest.raises(ValueError, match="offload_activations: needs gradient_checkpointing"):
        TrainConfig(offload_activations=True)


def test_optimizer_offload_trains_the_same_lora_and_resumes(synthetic_dataset, tmp_path):
    """AdamW on CPU copies of the LoRA (its moments never on the device): the same LoRA and losses, and a
    checkpoint of it resumes to the uninterrupted run's LoRA."""
    model = ToyWan(layers=2)
    runs = {}
    for offload in (False, True):
        runs[offload] = trainer(synthetic_dataset, tmp_path / f"opt{offload}", model, steps=3, optimizer_offload=offload,
                                save_every=1)
        runs[offload].run()
    a, b = (torch.cat([p.detach().flatten() for p in r.params]) for r in runs.values())
    assert torch.equal(a, b) and runs[False].history == runs[True].history
    assert all(s["exp_avg"].device.type == "cpu" for s in runs[True].optimizer.state.values())
    resumed = trainer(synthetic_dataset, tmp_path / "opt_resume", model, steps=2, optimizer_offload=True)
    resumed.run()
    resumed = trainer(synthetic_dataset, tmp_path / "opt_resume", model, steps=3, optimizer_offload=True)
    resumed.run()
    c = torch.cat([p.detach().flatten() for p in resumed.params])
    assert torch.equal(b, c)
