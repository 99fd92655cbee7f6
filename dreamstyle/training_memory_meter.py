"""Bytes resident on the compute device during training steps, measured on any device (the CPU included).

On a GPU the truth is torch.cuda.max_memory_allocated. On the CPU, where the compute and the offload
device are one, "resident on the device" is modelled by counting storages:
  - RESIDENT: tensors that are on the device before the step (the base weights the placement keeps
    there, the LoRA) are counted from the start;
  - every storage an operator creates during the step (activations, autograd's saved tensors, the
    per-call weight copies of swapped or fp8 blocks, gradients, AdamW state, temporaries) is counted
    from the moment it is created until the moment it is freed (a weak reference on the storage);
  - tensors that exist before the step and are not RESIDENT (the swapped blocks' weights in offload
    memory, the dataset's cached features) are not counted, nor are those made inside
    training_block_swap.offload_allocation() (checkpointed block inputs sent to offload memory).
A TorchDispatchMode sees every operator output, in the forward and the backward pass; views and
in-place results share a storage already counted. The peak is the largest sum of live counted bytes.
"""
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .training_block_swap import allocating_offload


class DeviceMemoryMeter(TorchDispatchMode):
    def __init__(self, resident=()):
        super().__init__()
        self.live = {}          # storage data_ptr -> (bytes, weak reference)
        self.current = self.peak = 0
        for t in resident:
            self._count(t)

    def _count(self, t):
        if allocating_offload():
            return
        storage = t.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self.live:
            return
        self.live[key] = (size, weakref.ref(storage, lambda _, key=key: self._free(key)))
        self.current += size
        self.peak = max(self.peak, self.current)

    def _free(self, key):
        size, _ = self.live.pop(key, (0, None))
        self.current -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._count(t)
        return out


def measured_peak(trainer):
    """Run TRAINER (a DreamStyleTrainer) to its end under one meter: the peak bytes resident on the device
    over its steps. Resident from the start: the base weights outside the swapped blocks, and the LoRA."""
    swapped = tuple(f"blocks.{i}." for i in trainer.swapped)
    tensors = list(trainer.model.named_parameters()) + list(trainer.model.named_buffers())
    meter = DeviceMemoryMeter([t for n, t in tensors if not n.startswith(swapped)] + list(trainer.params))

    class Steps:  # the meter is active during each optimizer step only (not while checkpoints are written)
        def __enter__(self):
            meter.__enter__()

        def __exit__(self, *exc):
            meter.__exit__(*exc)

    trainer.run(step_context=Steps)
    return meter.peak
