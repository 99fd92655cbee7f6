"""Token-specific LoRA (DreamStyle, after HydraLoRA): one shared down matrix, one up matrix per token type.

  x_out = W x + s · W_up^i W_down x,   i = token type of x ∈ {first-frame, video, style-image}

applied to the self-attention (q, k, v, o) and FFN (ffn.0, ffn.2) linear layers of every Wan block.
It depends on each token's type, so it cannot be merged into W: it runs at forward time.
"""
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layout import TOKEN_TYPE_NAMES, token_type_runs

ADAPTED_LAYER = re.compile(r"^blocks\.\d+\.(self_attn\.[qkvo]|ffn\.[02])$")


def adapted_layer_names(module):
    """Names (relative to the Wan diffusion model) of the linear layers a token LoRA adapts."""
    return [name for name, m in module.named_modules() if ADAPTED_LAYER.match(name) and hasattr(m, "weight")]


class TokenLoRA(nn.Module):
    """The residual s · W_up^i W_down x of one linear layer, with s = strength · alpha / rank."""

    def __init__(self, in_features, out_features, rank, num_types=len(TOKEN_TYPE_NAMES), alpha=None):
        super().__init__()
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.down = nn.Parameter(torch.empty(rank, in_features))
        self.up = nn.Parameter(torch.zeros(num_types, out_features, rank))  # zero: starts as the base model
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))

    @classmethod
    def from_weights(cls, down, ups, alpha=None):
        lora = cls(down.shape[1], ups.shape[1], down.shape[0], ups.shape[0], alpha)
        with torch.no_grad():
            lora.down.copy_(down)
            lora.up.copy_(ups)
        return lora

    def delta(self, x, frame_types, tokens_per_frame, strength=1.0):
        """x [B, L, in], frame_types [T] or [B, T] (L = T · tokens_per_frame) -> s · W_up^i W_down x, [B, L, out]."""
        return self.add_to(x.new_zeros(*x.shape[:-1], self.up.shape[1]), x, frame_types, tokens_per_frame, strength)

    def add_to(self, out, x, frame_types, tokens_per_frame, strength=1.0):
        """out += s · W_up^i W_down x in place, one matrix product per run of same-type tokens; returns out.

        Rows whose frame types are equal (the usual case: cond and uncond share the layout) are routed
        together; otherwise each batch item follows its own frame types.
        """
        if frame_types.ndim == 1:
            frame_types = frame_types.unsqueeze(0)
        if x.shape[1] != frame_types.shape[1] * tokens_per_frame:
            raise ValueError(f"{x.shape[1]} tokens, but the layout has {frame_types.shape[1]} frames of "
                             f"{tokens_per_frame} tokens")
        shared = frame_types.shape[0] == 1 or bool((frame_types == frame_types[:1]).all())
        if not shared and frame_types.shape[0] != x.shape[0]:
            raise ValueError(f"frame types for {frame_types.shape[0]} batch items, input has {x.shape[0]}")
        down, up = self.down.to(x), self.up.to(out)
        h = F.linear(x, down).mul_(strength * self.alpha / self.rank).to(out.dtype)
        for rows, types in ([(slice(None), frame_types[0])] if shared else
                            [(slice(i, i + 1), frame_types[i]) for i in range(x.shape[0])]):
            for t, start, stop in token_type_runs(types, tokens_per_frame):
                part = h[rows, start:stop]
                out[rows, start:stop].baddbmm_(part, up[t].t().expand(part.shape[0], -1, -1))
        return out


class TokenLoRAHooks:
    """Runs a set of TokenLoRAs on a model at forward time through forward hooks on its linear layers.

    `attach(model)` hooks each adapted layer; inside `with hooks.routing(frame_types, tokens_per_frame):`
    every hooked layer adds its token-specific residual to its output; `detach()` removes the hooks.
    The base weights are never touched, so a token LoRA composes with weight-merged LoRAs.
    """

    def __init__(self, loras, strength=1.0):
        self.loras = loras                  # {layer name: TokenLoRA}
        self.strength = strength
        self.handles = []
        self.call = None                    # (frame_types [B, T] or [T], tokens_per_frame) inside routing()

    def attach(self, model):
        for name, lora in self.loras.items():
            self.handles.append(model.get_submodule(name).register_forward_hook(self._hook(name, lora)))

    def detach(self):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def routing(self, frame_types, tokens_per_frame):
        return _Routing(self, frame_types, tokens_per_frame)

    def _hook(self, name, lora):
        def add_delta(module, args, output):
            if self.call is None:
                raise RuntimeError(f"token LoRA: layer {name} ran outside a routing() block (token types unknown)")
            frame_types, tokens_per_frame = self.call
            return lora.add_to(output, args[0], frame_types, tokens_per_frame, self.strength)
        return add_delta


class _Routing:
    def __init__(self, hooks, frame_types, tokens_per_frame):
        self.hooks, self.value = hooks, (frame_types, tokens_per_frame)

    def __enter__(self):
        self.hooks.call = self.value

    def __exit__(self, *exc):
        self.hooks.call = None


def tokens_per_frame(height, width, patch_size=(1, 2, 2)):
    """Tokens one latent frame of height x width becomes after Wan's patchify (padded to the patch)."""
    return math.ceil(height / patch_size[1]) * math.ceil(width / patch_size[2])
