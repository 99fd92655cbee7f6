"""Base weights streamed to the compute device per call, and block swap: N Wan blocks kept on the
offload device (CPU) and brought to the GPU one at a time, the next one prefetched while this one runs.

The frozen base is never written and never cloned whole. Each top-level unit of the Wan model (every
block of model.blocks and each other child: embeddings, head) runs (as
`torch.func.functional_call` does) on its own weights as the compute device and dtype need them, for the
duration of the call:
  - a weight already on the device in the compute dtype is used as it is (an inference tensor, as
    ComfyUI loads them, gets a zero-copy alias that autograd may save: `_alias`);
  - any other weight (a swapped block on the CPU, a weight ComfyUI's partial loading left on the
    offload device, an fp8 / e4m3fn weight) is copied to the device; fp8 weights are cast to the compute
    dtype (bf16 by default), fp32 / bf16 / fp16 weights keep theirs (ComfyUI's Wan keeps its patch
    embedding in fp32 and its ops cast to the input's dtype).
Only the copies of the unit that runs (and of the next block, prefetched on a side CUDA stream) exist
at a time, when gradient checkpointing recomputes the blocks in the backward pass: without it autograd
keeps every copy for the backward pass, which is why swapped blocks need checkpointing.

`place_blocks` is the CLI's placement (it owns its model): the first len(blocks) - N blocks and the
other units on the device, the last N blocks in pinned CPU memory. In ComfyUI the model manager places
the weights (partial loading); the streamer copies from wherever they are.
"""
import contextlib
import functools
import threading

import torch
from torch.nn.utils.stateless import _reparametrize_module  # what torch.func.functional_call runs

from .training_sublayers import GRANULARITIES, sublayer_checkpoints


def _alias(t):
    """A normal tensor sharing T's storage (autograd refuses to save inference tensors; never written)."""
    if not t.is_inference():
        return t
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage(), t.storage_offset(), t.shape,
                                                                  t.stride())


COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def compute_dtype_for(storage_dtype, requested=None):
    """The dtype a base stored as STORAGE_DTYPE computes in: REQUESTED if given, the storage dtype when it
    is a compute dtype (fp32 / bf16 / fp16), bf16 for fp8 storage."""
    if requested is not None:
        return requested
    return storage_dtype if storage_dtype in COMPUTE_DTYPES else torch.bfloat16


def unit_names(model):
    """The streamed units: 'blocks.<i>' for each block, then every other direct child of MODEL."""
    blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    return blocks + [n for n, _ in model.named_children() if n != "blocks"]


def swapped_blocks(model, swap):
    """Indices of the blocks kept on the offload device: the last SWAP blocks."""
    n = len(model.blocks)
    if not 0 <= swap <= n:
        raise ValueError(f"block_swap: expected 0..{n} (the model has {n} blocks), got {swap}")
    return list(range(n - swap, n))


def place_blocks(model, device, swap, offload_device="cpu"):
    """Move MODEL's units to DEVICE except the swapped blocks, which go to OFFLOAD_DEVICE (pinned when
    DEVICE is a GPU, so their copies to the device can run asynchronously)."""
    swapped = set(swapped_blocks(model, swap))
    pin = torch.device(device).type == "cuda"
    for name in unit_names(model):
        unit = model.get_submodule(name)
        if name.startswith("blocks.") and int(name.split(".")[1]) in swapped:
            unit.to(offload_device)
            if pin:
                for t in list(unit.parameters()) + list(unit.buffers()):
                    t.data = t.data.pin_memory()
        else:
            unit.to(device)
    return model


_OFFLOAD = threading.local()


@contextlib.contextmanager
def offload_allocation():
    """Marks the tensors made inside as offload-device memory (on the CPU, where both devices are one, the
    memory meter needs to be told; on a GPU they are on the CPU anyway)."""
    _OFFLOAD.active = True
    try:
        yield
    finally:
        _OFFLOAD.active = False


def allocating_offload():
    return getattr(_OFFLOAD, "active", False)


def checkpointed(fn, *args, **kwargs):
    """FN(*ARGS, **KWARGS) with its activations recomputed in the backward pass instead of stored."""
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False, **kwargs)


class StreamedBase:
    """Runs MODEL's units on per-call device weights (see the module docstring) inside `active()`;
    CHECKPOINT wraps every block in gradient checkpointing, at GRANULARITY "block" or "sublayer" (each
    block's self-attention, cross-attention and FFN checkpointed again inside it: training_sublayers.py).
    The SWAPPED blocks are copied per call even when their weights are on the device already (on the CPU,
    where offload and compute device are one, this is the same copy a GPU makes; in ComfyUI, it keeps their
    GPU bytes out of the step's needs). Counters: copied_bytes (bytes copied to the device), prefetched
    (block copies that were started before they were needed)."""

    def __init__(self, model, device, compute_dtype=torch.bfloat16, checkpoint=False, swapped=(),
                 offload_activations=False, offload_device="cpu", granularity="block"):
        if granularity not in GRANULARITIES:
            raise ValueError(f"checkpoint granularity: expected one of {GRANULARITIES}, got {granularity!r}")
        self.model, self.device, self.dtype = model, torch.device(device), compute_dtype
        self.checkpoint, self.sublayers = checkpoint, checkpoint and granularity == "sublayer"
        self.offload_activations, self.offload_device = offload_activations, torch.device(offload_device)
        self.swapped = {f"blocks.{i}" for i in swapped}
        self.blocks = len(model.blocks)
        self.copied_bytes = 0
        self.offloaded_bytes = 0
        self.prefetched = 0
        self._pending = {}
        self._held = {}
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def _weights(self, unit_name):
        unit, swapped = self.model.get_submodule(unit_name), unit_name in self.swapped
        out = {}
        for name, t in list(unit.named_parameters()) + list(unit.named_buffers()):
            target = t.dtype if t.dtype in COMPUTE_DTYPES or not t.is_floating_point() else self.dtype
            if t.device == self.device and t.dtype == target and not swapped:
                out[name] = _alias(t)
            else:
                out[name] = t.detach().to(self.device, target, non_blocking=True, copy=True)
                self.copied_bytes += out[name].nbytes
        return out

    def _fetch(self, name):
        """NAME's weights on the device: the prefetched copy (waited for) or a copy made now."""
        pending = self._pending.pop(name, None)
        if pending is None:
            return self._weights(name)
        event, weights = pending
        torch.cuda.current_stream(self.device).wait_event(event)
        for t in weights.values():
            t.record_stream(torch.cuda.current_stream(self.device))
        return weights

    def _prefetch(self, index):
        """Start copying block INDEX's weights on the side stream (GPU only; on the CPU a copy is a copy)."""
        name = f"blocks.{index}"
        if self._stream is None or not 0 <= index < self.blocks or name in self._pending:
            return
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            weights = self._weights(name)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._pending[name] = (event, weights)
        self.prefetched += 1

    def _run(self, name, index, unit, *args, **kwargs):
        backward = torch._C._current_graph_task_id() != -1  # a checkpointed block recomputed in backward
        if not backward:  # a new forward pass: the last backward's block needs its weights no more
            self._held.clear()
        weights = self._fetch(name)
        if index is not None:
            self._prefetch(index - 1 if backward else index + 1)
        sublayers = contextlib.nullcontext()
        if self.sublayers and index is not None:
            self._held = {name: weights}  # what its sub-layers recompute on (training_sublayers.py)
            sublayers = sublayer_checkpoints(unit, functools.partial(self._held_weights, name), checkpointed)
        try:
            with _reparametrize_module(unit, weights), sublayers:  # the unit's own forward on these weights
                return type(unit).forward(unit, *args, **kwargs)
        finally:
            if not backward:  # in the backward pass they stay until the next block's recomputation
                self._held.clear()

    def _held_weights(self, name):
        if name not in self._held:
            raise RuntimeError(f"sublayer checkpoint: {name} recomputed a sub-layer without its block's weights")
        return self._held[name]

    def _forward(self, name, index, unit, *args, **kwargs):
        run = functools.partial(self._run, name, index, unit)
        if self.checkpoint and index is not None:
            if self.offload_activations:  # what checkpointing keeps (the block's inputs) waits in offload memory
                with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
                    return checkpointed(run, *args, **kwargs)
            return checkpointed(run, *args, **kwargs)
        return run(*args, **kwargs)

    def _pack(self, t):
        with offload_allocation():
            copy = torch.empty(t.shape, dtype=t.dtype, device=self.offload_device,
                               pin_memory=self.device.type == "cuda").copy_(t, non_blocking=True)
        self.offloaded_bytes += copy.nbytes
        return t.device, copy

    def _unpack(self, packed):
        device, copy = packed
        return copy.to(device, non_blocking=True, copy=True)

    @contextlib.contextmanager
    def active(self):
        units = []
        for name in unit_names(self.model):
            unit = self.model.get_submodule(name)
            index = int(name.split(".")[1]) if name.startswith("blocks.") else None
            unit.forward = functools.partial(self._forward, name, index, unit)
            units.append(unit)
        try:
            yield self
        finally:
            for unit in units:
                unit.__dict__.pop("forward", None)
            self._pending.clear()
            self._held.clear()
