"""Runs a DreamStyle token-specific LoRA inside ComfyUI's Wan model, on a ModelPatcher clone.

Two ComfyUI mechanisms, nothing edited in place:
- an injection (inject/eject with the patcher's load/unload) attaches dreamstyle.token_lora's
  TokenLoRAHooks to the diffusion model's adapted linear layers;
- a DIFFUSION_MODEL wrapper reads the call's per-frame token types, which DreamStyleConditioning
  sends as the model condition `dreamstyle_frame_types` ([B, T], batched by ComfyUI like any
  condition, so cond and uncond each carry their own), and routes the hooks for that forward.
"""
import logging
import math
import uuid

import torch

import comfy.patcher_extension

from ..dreamstyle.layout import VIDEO
from ..dreamstyle.token_lora import TokenLoRAHooks, tokens_per_frame

FRAME_TYPES_KEY = "dreamstyle_frame_types"


class TokenLoRAInjection:
    def __init__(self, loras, strength):
        self.hooks = TokenLoRAHooks(loras, strength)
        self.warned = False

    def inject(self, patcher):
        dtype = patcher.model_dtype()
        for lora in self.hooks.loras.values():
            lora.to(device=patcher.load_device, dtype=dtype)
        self.hooks.attach(patcher.model.diffusion_model)

    def eject(self, patcher):
        self.hooks.detach()

    def wrapper(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={},
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
            frame_types = torch.full((x.shape[0], frames), VIDEO, dtype=torch.long, device=x.device)
        elif frame_types.shape[-1] != frames:
            raise ValueError(f"DreamStyle layout has {frame_types.shape[-1]} latent frames but the model input has "
                             f"{frames}: the latent and the conditioning come from different DreamStyleConditioning runs")
        with self.hooks.routing(frame_types.to(x.device), tokens_per_frame(x.shape[3], x.shape[4], patch)):
            return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)


def apply_token_lora(model, loras, strength):
    """A clone of `model` (a ModelPatcher of a Wan model) that runs the token LoRA at `strength`."""
    patched = model.clone()
    injection = TokenLoRAInjection(loras, strength)
    key = f"dreamstyle_token_lora_{uuid.uuid4().hex[:8]}"  # unique: two LoRAs never look like one loaded model
    patched.set_injections(key, [comfy.patcher_extension.PatcherInjection(injection.inject, injection.eject)])
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, injection.wrapper)
    return patched
