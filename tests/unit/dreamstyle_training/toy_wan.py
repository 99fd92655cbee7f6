"""A small stand-in for ComfyUI's WanModel (same forward signature and adapted-layer names) and toy
encoders, so the training core is tested without ComfyUI. `build(config)` is the CLI factory;
`build_probed(config)` the same with probes for the sharding test."""
import atexit
import hashlib
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

from dreamstyle.token_lora import adapted_layer_names
from dreamstyle.training_data import Encoders


class ToyAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, context=None):
        kv = x if context is None else context
        a = F.scaled_dot_product_attention(self.q(x)[:, None], self.k(kv)[:, None], self.v(kv)[:, None])[:, 0]
        return self.o(a)


class ToyBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.self_attn, self.cross_attn = ToyAttention(dim), ToyAttention(dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(approximate="tanh"), nn.Linear(2 * dim, dim))

    def forward(self, x, e, context):
        x = x + self.self_attn(self.norm1(x) + e)
        x = x + self.cross_attn(self.norm2(x), context)
        return x + self.ffn(self.norm3(x))


class ToyWan(nn.Module):
    def __init__(self, dim=32, layers=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.patch_size = (1, 2, 2)
        self.patch_embedding = nn.Conv3d(36, dim, self.patch_size, stride=self.patch_size)
        self.text_embedding = nn.Linear(4096, dim)
        self.img_emb = nn.Linear(1280, dim)
        self.time_embedding = nn.Linear(16, dim)
        self.blocks = nn.ModuleList([ToyBlock(dim) for _ in range(layers)])
        self.head = nn.Linear(dim, 16 * 4)

    def forward(self, x, timestep, context, clip_fea=None, **kwargs):
        b, _, t, h, w = x.shape
        tokens = self.patch_embedding(x).flatten(2).transpose(1, 2)
        ctx = self.text_embedding(context)
        if clip_fea is not None:
            ctx = torch.cat([self.img_emb(clip_fea), ctx], dim=1)
        freqs = torch.exp(-math.log(1000) * torch.arange(8, device=x.device) / 8)
        arg = timestep.float()[:, None] * freqs
        e = self.time_embedding(torch.cat([arg.sin(), arg.cos()], -1).to(x.dtype))[:, None]
        for block in self.blocks:
            tokens = block(tokens, e, ctx)
        out = self.head(tokens).view(b, t, h // 2, w // 2, 16, 2, 2)
        return out.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, 16, t, h, w)


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a):
        self.calls += 1
        return self.fn(*a)


def toy_encoders(seed=0):
    g = torch.Generator().manual_seed(seed)
    proj = torch.randn(3, 16, generator=g)
    clip_proj = torch.randn(3, 1280, generator=g) * 0.1

    def vae_encode(video):  # [T, H, W, 3] -> [1, 16, F, H/8, W/8]
        x = video.movedim(-1, 0)[None]                                  # [1, 3, T, H, W]
        first, rest = x[:, :, :1], x[:, :, 1:]
        parts = [F.avg_pool3d(first, (1, 8, 8))]
        if rest.shape[2]:
            parts.append(F.avg_pool3d(rest, (4, 8, 8)))
        z = torch.cat(parts, 2)
        return torch.einsum("bcthw,cd->bdthw", z - 0.5, proj)

    def text_encode(caption):
        rows = []
        for word in caption.replace(",", " ").split():
            s = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
            rows.append(torch.randn(4096, generator=torch.Generator().manual_seed(s)) * 0.05)
        return torch.stack(rows)[None]

    def clip_vision_encode(image):  # [1, H, W, 3]
        grid = F.adaptive_avg_pool2d(image.movedim(-1, 1), 16).flatten(2).transpose(1, 2) @ clip_proj
        return torch.cat([grid.mean(1, keepdim=True), grid], 1)

    return Encoders(Counter(vae_encode), Counter(text_encode), Counter(clip_vision_encode), fingerprint=f"toy{seed}")


def build(config):
    """CLI factory: (model, encoders) from the config's "model" section."""
    opts = config.get("model", {})
    return ToyWan(dim=opts.get("dim", 32), layers=opts.get("layers", 2), seed=opts.get("seed", 0)), toy_encoders()


def build_probed(config):
    """build(config) plus forward hooks on every adapted layer. At exit each process writes
    <run_dir>/probe.<rank>.json: the layer calls, the calls that saw the layer's whole, unchanged weight,
    the most base parameter elements the model object itself held during a call, and whether the model
    came back as it was: bit-identical weights, the same parameter objects, requires_grad flags, module
    classes and hooks."""
    model, encoders = build(config)
    reference = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = dict(model.named_parameters())
    flags = {n: p.requires_grad for n, p in params.items()}
    stats = {"calls": 0, "whole_weight_calls": 0, "model_elements_max": 0}

    def probe(name):
        def record(module, args, output):
            weight = module.weight
            stats["calls"] += 1
            stats["whole_weight_calls"] += (not isinstance(weight, DTensor)
                                            and torch.equal(weight, reference[f"{name}.weight"]))
            stats["model_elements_max"] = max(stats["model_elements_max"], sum(p.numel() for p in model.parameters()))
        return record

    for name in adapted_layer_names(model):
        model.get_submodule(name).register_forward_hook(probe(name))
    modules = {n: (type(m), dict(m._forward_hooks), dict(m._forward_pre_hooks)) for n, m in model.named_modules()}

    def report():
        now = dict(model.named_parameters())
        stats["restored"] = bool(
            now.keys() == params.keys() and all(now[n] is params[n] for n in now)
            and all(type(p) is nn.Parameter and torch.equal(p, reference[n]) for n, p in now.items())
            and {n: p.requires_grad for n, p in now.items()} == flags
            and {n: (type(m), dict(m._forward_hooks), dict(m._forward_pre_hooks))
                 for n, m in model.named_modules()} == modules)
        with open(os.path.join(config["run_dir"], f"probe.{os.environ.get('RANK', '0')}.json"), "w") as f:
            json.dump(stats, f)

    atexit.register(report)
    return model, encoders
