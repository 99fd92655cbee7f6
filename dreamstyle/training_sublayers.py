"""Gradient checkpointing inside a Wan block: its self-attention, cross-attention and FFN recomputed one at a time.

With block checkpointing the backward pass of block i recomputes the whole block and keeps every activation
autograd saves inside it until the block's backward is through. With sublayer checkpointing that
recomputation runs the block's own forward with each of its sub-layers (`self_attn`, `cross_attn`, `ffn`,
the block's children) wrapped in a checkpoint of its own: the block's recomputation keeps only what lies
between the sub-layers (their inputs, the norms), and each sub-layer's activations are recomputed again, one
sub-layer at a time, when the backward pass reaches it. The block's
forward is never re-expressed: ComfyUI's WanAttentionBlock.forward runs as it is and calls its children.

Torch's nested checkpoints recompute a sub-layer through the checkpoint made in the forward pass, after the
block's recomputation has returned (torch/utils/checkpoint.py, "Nestable Checkpoint"): so a sub-layer asks
WEIGHTS_OF for its block's weights when it runs (training_block_swap.StreamedBase holds the copies of the
block being recomputed), not the module's parameters of that later moment, and no checkpoint of the forward
pass keeps a block's weight copies alive. The arithmetic is the same operations on the same inputs: the
gradients are those of block checkpointing (tests: bit-identical).
"""
import contextlib
import functools

from torch.nn.utils.stateless import _reparametrize_module

SUBLAYERS = ("self_attn", "cross_attn", "ffn")
GRANULARITIES = ("block", "sublayer")


def _run_sublayer(module, name, weights_of, *args, **kwargs):
    own = {k[len(name) + 1:]: t for k, t in weights_of().items() if k.startswith(name + ".")}
    with _reparametrize_module(module, own):
        return type(module).forward(module, *args, **kwargs)


@contextlib.contextmanager
def sublayer_checkpoints(block, weights_of, checkpointed):
    """For the duration, each sub-layer of BLOCK runs through CHECKPOINTED(fn, *args) on its share of the
    weights WEIGHTS_OF() gives when it runs ({name relative to BLOCK: tensor})."""
    wrapped = []
    for name in SUBLAYERS:
        module = getattr(block, name, None)
        if module is None:
            continue
        module.forward = functools.partial(checkpointed, functools.partial(_run_sublayer, module, name, weights_of))
        wrapped.append(module)
    try:
        yield
    finally:
        for module in wrapped:
            module.__dict__.pop("forward", None)
