"""Runs a DreamStyle token-specific LoRA inside ComfyUI's Wan model, on a ModelPatcher clone.

ComfyUI mechanisms only, nothing of the received model edited:
- an injection (inject/eject with the patcher's load/unload) attaches dreamstyle.token_lora's
  TokenLoRAHooks to the diffusion model's adapted linear layers; at eject the per-device copies of the
  LoRA are dropped, so nothing of it stays on the GPU once ComfyUI unloads the model;
- an APPLY_MODEL wrapper checks, where the model first sees the noisy latent and the conditioning
  together, that they belong to one DreamStyleConditioning layout (the pack's error, not a torch one);
- torch.compile: see the dynamo setting below; the routing itself is tensor ops (no graph break) and the
  strength a tensor;
- a DIFFUSION_MODEL wrapper reads the call's per-frame token types, which DreamStyleConditioning sends
  as the model condition `dreamstyle_frame_types` ([B, T], batched by ComfyUI like any condition, so
  cond and uncond each carry their own), and routes the hooks for that forward.

Precision: the LoRA is kept as loaded (fp32) and runs in each layer's compute dtype (the dtype of the
layer's output: ComfyUI's manual_cast dtype for fp8/scaled-fp8/GGUF bases), never in the storage dtype.
Memory: the bytes of its copy in the compute dtype are added to the clone's model_size(), which is what
ComfyUI's loader budgets (free memory before loading, lowvram partial loading).
"""
import logging
import math
import uuid
import weakref

import torch

import comfy.patcher_extension

from ..dreamstyle.layout import VIDEO
from ..dreamstyle.token_lora import TokenLoRAHooks, tokens_per_frame

# torch.compile'd code does not see forward hooks added after it was compiled unless dynamo guards module
# hooks (by default it skips those guards): TorchCompileModel then the token LoRA would silently run the
# model without the LoRA. With the guards, either order recompiles where the hooks changed and stays exact.
torch._dynamo.config.skip_nnmodule_hook_guards = False

FRAME_TYPES_KEY = "dreamstyle_frame_types"
LAYOUT_ID_KEY = "dreamstyle_layout_id"


def compute_dtype(patcher):
    """The dtype the model computes in: ComfyUI's manual_cast dtype when weights are stored in another one."""
    return getattr(patcher.model, "manual_cast_dtype", None) or patcher.model_dtype()


def lora_bytes(loras, dtype):
    """Bytes of the LoRA's copy in `dtype` (what the model's device holds while the model is loaded)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return sum((lora.down.numel() + lora.up.numel()) * itemsize for lora in loras.values())


class TokenLoRAInjection:
    """One patched model's token LoRA: shared hooks (see shared_hooks) run at this model's strength."""

    def __init__(self, hooks, strength):
        self.hooks = hooks
        self.strength = torch.tensor(float(strength))
        self.warned = False

    def __deepcopy__(self, memo):
        return self  # ModelPatcher.clone deep-copies model_options (where the wrappers live): share, never copy

    def inject(self, patcher):
        dm = patcher.model.diffusion_model
        self.hooks.attach(getattr(dm, "_orig_mod", dm))  # ComfyUI 0.3.52's TorchCompileModel object-patches it

    def eject(self, patcher):
        self.hooks.detach()
        for lora in self.hooks.loras.values():
            lora.drop_copies()

    def apply_model_wrapper(self, executor, x, t, c_concat=None, *args, **kwargs):
        frame_types = kwargs.get(FRAME_TYPES_KEY)
        if frame_types is not None and c_concat is not None and (
                c_concat.shape[2] != x.shape[2] or frame_types.shape[-1] != x.shape[2]):
            raise ValueError(f"DreamStyle: the latent has {x.shape[2]} latent frames but the conditioning was built "
                             f"for {frame_types.shape[-1]}: connect the latent and the positive/negative of the same "
                             "DreamStyleConditioning node")
        return executor(x, t, c_concat, *args, **kwargs)

    def wrapper(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={},
                **kwargs):
        frame_types = kwargs.pop(FRAME_TYPES_KEY, None)
        kwargs.pop(LAYOUT_ID_KEY, None)
        patch = executor.class_obj.patch_size
        frames = x.shape[2] + (time_dim_concat.shape[2] if time_dim_concat is not None else 0)
        frames = math.ceil(frames / patch[0])
        if frame_types is None:
            if not self.warned:
                logging.warning("DreamStyle token LoRA: the conditioning carries no DreamStyle frame layout "
                                "(not from DreamStyleConditioning); every token uses the video up-matrix")
                self.warned = True
            frame_types = torch.full((1, frames), VIDEO, dtype=torch.long, device=x.device)
        elif frame_types.shape[-1] != frames:
            raise ValueError(f"DreamStyle layout has {frame_types.shape[-1]} latent frames but the model input has "
                             f"{frames}: the latent and the conditioning come from different DreamStyleConditioning runs")
        return self.hooks.run(frame_types.to(x.device), tokens_per_frame(x.shape[3], x.shape[4], patch), self.strength,
                              executor, x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)


_SHARED = weakref.WeakValueDictionary()


def shared_hooks(diffusion_model, lora_key, make_loras):
    """The TokenLoRAHooks of one LoRA file on one diffusion model, shared by every patched model made from
    them (any strength) while one is alive: the same hook functions, so torch.compile'd code stays valid.
    `lora_key` names the file's content (path, size, mtime); make_loras() reads it when not shared yet."""
    key = (id(diffusion_model), lora_key)
    hooks = _SHARED.get(key)
    if hooks is None:
        hooks = TokenLoRAHooks(make_loras())
        _SHARED[key] = hooks
    return hooks


def apply_token_lora(model, loras, strength, lora_key=None):
    """A clone of `model` (a ModelPatcher of a Wan model) that runs the token LoRA at `strength`.

    `loras` is {layer: TokenLoRA} or a callable making it; with `lora_key`, the hooks are shared (shared_hooks)."""
    make = loras if callable(loras) else (lambda: loras)
    dm = model.get_model_object("diffusion_model")
    hooks = shared_hooks(getattr(dm, "_orig_mod", dm), lora_key, make) if lora_key is not None else \
        TokenLoRAHooks(make())
    patched = model.clone()
    injection = TokenLoRAInjection(hooks, strength)
    key = f"dreamstyle_token_lora_{uuid.uuid4().hex[:8]}"  # unique: two LoRAs never look like one loaded model
    patched.set_injections(key, [comfy.patcher_extension.PatcherInjection(injection.inject, injection.eject)])
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, key, injection.apply_model_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, injection.wrapper)
    patched.size = model.model_size() + lora_bytes(hooks.loras, compute_dtype(model))
    return patched
