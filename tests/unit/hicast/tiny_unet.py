"""A test-only miniature of ComfyUI's UNetModel calling convention (no ComfyUI import in unit tests):
forward(x, timesteps, context, transformer_options) runs input blocks with transformer_options["block"]
set and every input_block_patch applied after each block, then cross-attention to the context, then a decoder."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hicast.unet_levels import encoder_levels


class TinyUNet(nn.Module):
    def __init__(self, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, context_dim=16, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.levels = encoder_levels(model_channels, channel_mult, num_res_blocks)
        widths = [lv.channels for lv in self.levels]
        blocks = [nn.Conv2d(4, widths[0], 3, padding=1)]
        prev = widths[0]
        for l, c in enumerate(widths):
            for _ in range(num_res_blocks):
                blocks.append(nn.Conv2d(prev, c, 3, padding=1))
                prev = c
            if l != len(widths) - 1:
                blocks.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.input_blocks = nn.ModuleList(blocks)
        self.time = nn.Linear(16, widths[0])
        self.q, self.k, self.v = nn.Linear(prev, prev), nn.Linear(context_dim, prev), nn.Linear(context_dim, prev)
        self.up = nn.ModuleList(nn.Conv2d(widths[l + 1] + widths[l], widths[l], 3, padding=1) for l in range(len(widths) - 1))
        self.out = nn.Conv2d(widths[0], 4, 3, padding=1)
        with torch.no_grad():  # a trained UNet predicts noise at unit scale; default init gives ~0.1
            self.out.weight.mul_(10.0)
            for up in self.up:
                up.weight.mul_(2.0)
        self.requires_grad_(False)

    def forward(self, x, timesteps, context, transformer_options):
        opts = dict(transformer_options, original_shape=list(x.shape))
        patches = opts.get("patches", {}).get("input_block_patch", [])
        half = torch.exp(-math.log(1e4) * torch.arange(8, device=x.device) / 8)
        temb = self.time(torch.cat([torch.sin(timesteps[:, None] * half), torch.cos(timesteps[:, None] * half)], 1))
        h, skips = x, {}
        for i, block in enumerate(self.input_blocks):
            opts["block"] = ("input", i)
            h = block(h) if i else block(h) + temb[:, :, None, None]
            h = F.silu(h) if i else h
            for p in patches:
                h = p(h, opts)
            skips[i] = h
        b, c, hh, ww = h.shape
        q = self.q(h.flatten(2).transpose(1, 2))
        attn = torch.softmax(q @ self.k(context).transpose(1, 2) / math.sqrt(c), dim=-1) @ self.v(context)
        h = h + attn.transpose(1, 2).reshape(b, c, hh, ww)
        for l in reversed(range(len(self.levels) - 1)):
            skip = skips[self.levels[l].block]
            h = F.silu(self.up[l](torch.cat([F.interpolate(h, size=skip.shape[-2:]), skip], 1)))
        return self.out(h)
