"""Runs a DreamStyle token-specific LoRA inside ComfyUI's Wan model, on a ModelPatcher clone.

Two ComfyUI mechanisms, nothing edited in place:
- an injection (inject/eject with the patcher's load/unload) puts forward hooks on the adapted
  linear layers of the diffusion model; each hook adds s · W_up^i W_down x to the layer's output;
- a DIFFUSION_MODEL wrapper reads the call's per-frame token types, which DreamStyleConditioning
  sends as the model condition `dreamstyle_frame_types` ([B, T], batched by ComfyUI like any
  condition, so cond and uncond each carry their own), and the token grid of the call, and hands
  them to the hooks for the duration of that forward.
"""
import logging
import math
import uuid

import torch

import comfy.patcher_extension
import comfy.utils

from ..dreamstyle.layout import VIDEO

FRAME_TYPES_KEY = "dreamstyle_frame_types"


class TokenLoRAInjection:
    def __init__(self, loras, strength):
        self.loras = loras            # {layer name: dreamstyle.token_lora.TokenLoRA}
        self.strength = strength
        self.handles = []
        self.call = None              # (frame_types [B, T], tokens_per_frame) during one forward
        self.warned = False

    def inject(self, patcher):
        dm = patcher.model.diffusion_model
        dtype = patcher.model_dtype()
        for name, lora in self.loras.items():
            module = comfy.utils.get_attr(dm, name)
            lora.to(device=patcher.load_device, dtype=dtype)
            self.handles.append(module.register_forward_hook(self._hook(name, lora)))

    def eject(self, patcher):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _hook(self, name, lora):
        def add_delta(module, args, output):
            if self.call is None:
                raise RuntimeError(f"DreamStyle token LoRA: layer {name} ran outside the model's forward wrapper")
            frame_types, tokens_per_frame = self.call
            return output + lora.delta(args[0], frame_types, tokens_per_frame, self.strength).to(output.dtype)
        return add_delta

    def wrapper(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options={},
                **kwargs):
        frame_types = kwargs.pop(FRAME_TYPES_KEY, None)
        patch = executor.class_obj.patch_size
        frames = x.shape[2] + (time_dim_concat.shape[2] if time_dim_concat is not None else 0)
        frames = math.ceil(frames / patch[0])
        tokens_per_frame = math.ceil(x.shape[3] / patch[1]) * math.ceil(x.shape[4] / patch[2])
        if frame_types is None:
            if not self.warned:
                logging.warning("DreamStyle token LoRA: the conditioning carries no DreamStyle frame layout "
                                "(not from DreamStyleConditioning); every token uses the video up-matrix")
                self.warned = True
            frame_types = torch.full((x.shape[0], frames), VIDEO, dtype=torch.long, device=x.device)
        elif frame_types.shape[-1] != frames:
            raise ValueError(f"DreamStyle layout has {frame_types.shape[-1]} latent frames but the model input has "
                             f"{frames}: the latent and the conditioning come from different DreamStyleConditioning runs")
        self.call = (frame_types.to(x.device), tokens_per_frame)
        try:
            return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)
        finally:
            self.call = None


def apply_token_lora(model, loras, strength):
    """A clone of `model` (a ModelPatcher of a Wan model) that runs the token LoRA at `strength`."""
    patched = model.clone()
    injection = TokenLoRAInjection(loras, strength)
    key = f"dreamstyle_token_lora_{uuid.uuid4().hex[:8]}"  # unique: two LoRAs never look like one loaded model
    patched.set_injections(key, [comfy.patcher_extension.PatcherInjection(injection.inject, injection.eject)])
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, injection.wrapper)
    return patched
