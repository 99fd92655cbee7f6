"""Runs a DreamStyle token-specific LoRA inside ComfyUI's Wan model, on a ModelPatcher clone.

ComfyUI mechanisms only, nothing of the received model edited:
- an injection (inject/eject with the patcher's load/unload) attaches dreamstyle.token_lora's
  TokenLoRAHooks to the diffusion model's adapted linear layers; at eject the per-device copies of the
  LoRA are dropped, so nothing of it stays on the GPU once ComfyUI unloads the model;
- torch.compile: an APPLY_MODEL wrapper (eager, outside TorchCompileModel's compiled diffusion model) runs
  the model with dynamo guarding module hooks and checks that the hooks ran (TokenLoRARunner.apply_model);
  the routing itself is tensor ops (no graph break) and the strength a tensor;
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

FRAME_TYPES_KEY = "dreamstyle_frame_types"


def compute_dtype(patcher):
    """The dtype the model computes in: ComfyUI's manual_cast dtype when weights are stored in another one."""
    return getattr(patcher.model, "manual_cast_dtype", None) or patcher.model_dtype()


def lora_bytes(loras, dtype):
    """Bytes of the LoRA's copy in `dtype` (what the model's device holds while the model is loaded)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return sum((lora.down.numel() + lora.up.numel()) * itemsize for lora in loras.values())


class TokenLoRARunner:
    """Runs one token LoRA (TokenLoRAHooks) in every model patched with it, whatever the strength: the injection
    (inject/eject) and the DIFFUSION_MODEL wrapper are this one object, and each patched model's strength is a
    tensor in its transformer_options, so torch.compile'd code sees the same functions for any strength."""

    def __init__(self, hooks):
        self.hooks = hooks
        self.key = f"dreamstyle_token_lora_{uuid.uuid4().hex[:8]}"
        self.strength_key = self.key + "_strength"
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

    def apply_model(self, executor, *args, **kwargs):
        """APPLY_MODEL wrapper: the model's forward with dynamo guarding module hooks, checked to have run them.

        Dynamo skips guards on module hooks by default, so code compiled before the hooks were attached (a
        TorchCompileModel output that already ran without the LoRA) is reused and runs without them. Setting
        the option once at import is not enough: torch keeps its config per thread/context (2.13 does), and
        ComfyUI imports the pack in one context and samples in another thread. Here it is set around every
        run of the patched model; when the hooks still did not run (code compiled without the guard), the
        compiled code is dropped (torch.compiler.reset) and the forward runs again, recompiled with it."""
        self.hooks.applied = False
        with torch._dynamo.config.patch(skip_nnmodule_hook_guards=False):
            out = executor(*args, **kwargs)
            if self.hooks.applied:
                return out
            logging.warning("DreamStyle token LoRA: the compiled model reused code compiled before the LoRA was "
                            "attached (TorchCompileModel before DreamStyleTokenLoRALoader and run without it); "
                            "torch.compile's cache is cleared and the model recompiled. Put TorchCompileModel "
                            "after DreamStyleTokenLoRALoader to avoid this.")
            torch.compiler.reset()
            out = executor(*args, **kwargs)
        if not self.hooks.applied:
            raise RuntimeError("DreamStyle token LoRA: the model's forward did not run the LoRA's layers")
        return out

    def __call__(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={},
                 **kwargs):
        frame_types = kwargs.pop(FRAME_TYPES_KEY, None)
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
        return self.hooks.run(frame_types.to(x.device), tokens_per_frame(x.shape[3], x.shape[4], patch),
                              transformer_options[self.strength_key], executor, x, timestep, context, clip_fea,
                              time_dim_concat, transformer_options, **kwargs)


_SHARED = weakref.WeakValueDictionary()
_LAST = []  # the most recent runner stays alive: a strength change builds its model after the old one is gone


def shared_runner(diffusion_model, lora_key, make_loras):
    """The runner of one LoRA file on one diffusion model, shared by every patched model made from them (any
    strength) while one is alive. `lora_key` names the file's content (path, size, mtime); make_loras()
    reads it when it is not shared yet."""
    key = (id(diffusion_model), lora_key)
    runner = _SHARED.get(key)
    if runner is None:
        runner = TokenLoRARunner(TokenLoRAHooks(make_loras()))
        _SHARED[key] = runner
    _LAST[:] = [runner]
    return runner


def apply_token_lora(model, loras, strength, lora_key=None):
    """A clone of `model` (a ModelPatcher of a Wan model) that runs the token LoRA at `strength`.

    `loras` is {layer: TokenLoRA} or a callable making it; with `lora_key`, the runner is shared (shared_runner)."""
    make = loras if callable(loras) else (lambda: loras)
    dm = model.get_model_object("diffusion_model")
    runner = shared_runner(getattr(dm, "_orig_mod", dm), lora_key, make) if lora_key is not None else \
        TokenLoRARunner(TokenLoRAHooks(make()))
    patched = model.clone()
    options = patched.model_options["transformer_options"]
    if runner.strength_key in options:  # the same LoRA stacked on itself: its residual is linear in strength
        options[runner.strength_key] = options[runner.strength_key] + float(strength)
        return patched
    # the injection key is unique per patched model: two strengths never look like one loaded model
    patched.set_injections(f"{runner.key}_{uuid.uuid4().hex[:8]}",
                           [comfy.patcher_extension.PatcherInjection(runner.inject, runner.eject)])
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, runner.key, runner)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, runner.key, runner.apply_model)
    options[runner.strength_key] = torch.tensor(float(strength))
    patched.size = model.model_size() + lora_bytes(runner.hooks.loras, compute_dtype(model))
    return patched
