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

from .layout import TOKEN_TYPE_NAMES

ADAPTED_LAYER = re.compile(r"^blocks\.\d+\.(self_attn\.[qkvo]|ffn\.[02])$")


def adapted_layer_names(module):
    """Names (relative to the Wan diffusion model) of the linear layers a token LoRA adapts."""
    return [name for name, m in module.named_modules() if ADAPTED_LAYER.match(name) and hasattr(m, "weight")]


def linear_shape(module):
    """(out_features, in_features) of a linear layer, from its declared sizes when it has them: quantized
    layers (ComfyUI-GGUF and the like) keep a packed weight whose shape is not the matrix's, and the token
    LoRA never needs to read or cast the base weight."""
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return int(module.out_features), int(module.in_features)
    weight = module.weight
    return tuple(int(d) for d in getattr(weight, "tensor_shape", weight.shape))


class TokenLoRA(nn.Module):
    """The residual s · W_up^i W_down x of one linear layer, with s = strength · alpha / rank."""

    def __init__(self, in_features, out_features, rank, num_types=len(TOKEN_TYPE_NAMES), alpha=None):
        super().__init__()
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.down = nn.Parameter(torch.empty(rank, in_features))
        self.up = nn.Parameter(torch.zeros(num_types, out_features, rank))  # zero: starts as the base model
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self._copies = {}                   # {(device, dtype): (stamp, down, up)}, see weights_for

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

    def weights_for(self, device, dtype):
        """(down, up) on `device` in `dtype`: the parameters themselves when they already match (and always
        while training them), otherwise a cached copy. The parameters are never cast in place, so the loaded
        LoRA keeps its precision whatever the base model stores its weights in (fp8, GGUF, ...)."""
        down, up = self.down, self.up
        if (down.device == device and down.dtype == dtype) or (torch.is_grad_enabled() and down.requires_grad):
            return down.to(device, dtype), up.to(device, dtype)
        stamp = (down.data_ptr(), down._version, up.data_ptr(), up._version)
        cached = self._copies.get((device, dtype))
        if cached is None or cached[0] != stamp:
            with torch.no_grad():
                cached = (stamp, down.detach().to(device, dtype), up.detach().to(device, dtype))
            self._copies[(device, dtype)] = cached
        return cached[1], cached[2]

    def drop_copies(self):
        """Free the cached per-device/dtype copies (the model was unloaded, or the LoRA moved)."""
        self._copies.clear()

    def copies_bytes(self):
        return sum(t.numel() * t.element_size() for _, *ts in self._copies.values() for t in ts)

    def add_to(self, out, x, frame_types, tokens_per_frame, strength=1.0):
        """out += s · W_up^i W_down x in place, computed in out's dtype (the layer's compute dtype); returns out.

        Routing is tensor ops only (no data-dependent Python control flow, so torch.compile traces it in one
        graph): the tokens of latent frame f are contiguous after Wan's patchify, so each frame's up matrix is
        gathered by its type and applied with one batched product over frames — exactly the products of a
        plain LoRA, whatever the types. frame_types [T] is shared by the batch; [B, T] routes each row.
        `strength` may be a 0-d tensor (then a new strength needs no recompile).
        """
        if frame_types.ndim == 1:
            frame_types = frame_types.unsqueeze(0)
        b, length = x.shape[0], x.shape[1]
        frames = frame_types.shape[1]
        if length != frames * tokens_per_frame:
            raise ValueError(f"{length} tokens, but the layout has {frames} frames of {tokens_per_frame} tokens")
        if frame_types.shape[0] not in (1, b):
            raise ValueError(f"frame types for {frame_types.shape[0]} batch items, input has {b}")
        down, up = self.weights_for(out.device, out.dtype)
        rank, out_f = down.shape[0], up.shape[1]
        h = F.linear(x.to(out.dtype), down) * (strength * (self.alpha / self.rank))
        ups = up[frame_types.to(up.device).expand(b, -1)]                          # [B, T, out, r]
        out.view(b * frames, tokens_per_frame, out_f).baddbmm_(
            h.view(b * frames, tokens_per_frame, rank), ups.view(b * frames, out_f, rank).transpose(1, 2))
        return out


class TokenLoRAHooks:
    """Runs a set of TokenLoRAs on a model at forward time through forward hooks on its linear layers.

    `attach(model)` hooks each adapted layer; inside `with hooks.routing(frame_types, tokens_per_frame):`
    (or `hooks.run(...)`) every hooked layer adds its token-specific residual to its output; `detach()`
    removes the hooks. The base weights are never touched, so a token LoRA composes with weight-merged
    LoRAs. Each layer's hook function is made once and reused by every attach, and the strength travels
    with the call as a tensor: torch.compile'd code (which guards the hook functions) then needs no
    recompile when the same LoRA is re-attached or runs at another strength. `applied` turns True when a
    hooked layer added its residual (a side effect torch.compile'd code replays), so a caller can tell a
    forward that ran without the hooks (code compiled before they were attached) from one that ran them.
    """

    def __init__(self, loras, strength=1.0):
        self.loras = loras                  # {layer name: TokenLoRA}
        self.strength = torch.tensor(float(strength))
        self.handles = []
        self.call = None                    # (frame_types [B, T] or [T], tokens_per_frame, strength) while routed
        self.applied = False                # set by the hooks; callers reset it
        self._hooks = {name: self._hook(name, lora) for name, lora in loras.items()}

    def attach(self, model):
        for name, hook in self._hooks.items():
            self.handles.append(model.get_submodule(name).register_forward_hook(hook))

    def detach(self):
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def routing(self, frame_types, tokens_per_frame, strength=None):
        return _Routing(self, (frame_types, tokens_per_frame, self.strength if strength is None else strength))

    def run(self, frame_types, tokens_per_frame, strength, forward, *args, **kwargs):
        """forward(*args, **kwargs) with the hooks routed at `strength` (what routing() does, as a plain call
        that torch.compile traces without a graph break)."""
        self.call = (frame_types, tokens_per_frame, strength)
        try:
            return forward(*args, **kwargs)
        finally:
            self.call = None

    def _hook(self, name, lora):
        def add_delta(module, args, output):
            if self.call is None:
                raise RuntimeError(f"token LoRA: layer {name} ran outside a routing() block (token types unknown)")
            frame_types, tokens_per_frame, strength = self.call
            self.applied = True
            return lora.add_to(output, args[0], frame_types, tokens_per_frame, strength)
        return add_delta


class _Routing:
    def __init__(self, hooks, value):
        self.hooks, self.value = hooks, value

    def __enter__(self):
        self.hooks.call = self.value

    def __exit__(self, *exc):
        self.hooks.call = None


def tokens_per_frame(height, width, patch_size=(1, 2, 2)):
    """Tokens one latent frame of height x width becomes after Wan's patchify (padded to the patch)."""
    return math.ceil(height / patch_size[1]) * math.ceil(width / patch_size[2])
