"""Sublayer gradient checkpointing (training_sublayers.py): each block's self-attention, cross-attention and
FFN recomputed one at a time inside the block's recomputation gives the LoRA gradients and the LoRA of
block checkpointing, with the base in fp32 or fp8, swapped or not; the weight copies of swapped blocks are
let go as with block checkpointing."""
import pytest
import torch
from test_block_swap import fp8_copy, lora_grads, trainer
from toy_wan import ToyAttention, ToyWan

from dreamstyle.training import TrainConfig


def run_with(dataset, path, model, granularity, **kw):
    t = trainer(dataset, path, model, checkpoint_granularity=granularity, **kw)
    grads, streamer = lora_grads(t)
    return grads, streamer


@pytest.mark.parametrize("fp8,swap", [(False, 0), (False, 2), (True, 2)])
def test_sublayer_checkpoints_give_the_gradients_of_block_checkpoints(synthetic_dataset, tmp_path, fp8, swap):
    model = ToyWan(layers=3)
    if fp8:
        model = fp8_copy(model)
    calls = {}
    original = ToyAttention.forward

    def counting(self, *a):
        calls[id(self)] = calls.get(id(self), 0) + 1
        return original(self, *a)
    ToyAttention.forward = counting
    try:
        block, _ = run_with(synthetic_dataset, tmp_path / "block", model, "block", block_swap=swap)
        block_calls, calls = calls, {}
        sub, streamer = run_with(synthetic_dataset, tmp_path / "sub", model, "sublayer", block_swap=swap)
    finally:
        ToyAttention.forward = original
    # each attention ran in the forward pass and the block's recomputation; with sublayer checkpoints it
    # was recomputed once more on its own
    assert sorted(block_calls.values()) == [2] * 2 * len(model.blocks)
    assert sorted(calls.values()) == [3] * 2 * len(model.blocks)
    assert all(torch.equal(a, b) for a, b in zip(block, sub))
    assert not streamer._held  # no block's weights are held after the step's run
    assert all("forward" not in b.ffn.__dict__ for b in model.blocks)  # unwrapped


def test_sublayer_training_gives_the_lora_of_block_training(synthetic_dataset, tmp_path):
    model = ToyWan(layers=2)
    runs = [trainer(synthetic_dataset, tmp_path / g, model, steps=2, block_swap=1, checkpoint_granularity=g).run()
            for g in ("block", "sublayer")]
    assert runs[0].losses == runs[1].losses
    a, b = (torch.cat([p.detach().flatten() for l in r.loras.values() for p in l.parameters()]) for r in runs)
    assert torch.equal(a, b)


def test_sublayer_granularity_needs_checkpointing():
    with pytest.raises(ValueError, match="sublayer needs gradient_checkpointing"):
        TrainConfig(checkpoint_granularity="sublayer")
    with pytest.raises(ValueError, match="checkpoint_granularity: expected one of"):
        TrainConfig(gradient_checkpointing=True, checkpoint_granularity="layer")
