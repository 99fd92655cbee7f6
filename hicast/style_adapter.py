"""Style Adapter (HiCAST, T2I-Adapter-like): control-map batch -> multi-scale features for the UNet encoder.

F_l = Out_l(Res_l(Down_l(... PixelUnshuffle_8(m) ...))), one feature per encoder level with the UNet's
width and 1/2^l of the latent grid. Each Out_l is a zero-initialised 1x1 conv, so a fresh adapter adds
nothing. Own implementation (diffusers' FullAdapter has the same shape but would add diffusers as a runtime
dependency for ~40 lines).
"""
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class StyleAdapter(nn.Module):
    def __init__(self, channels=(320, 640, 1280, 1280), in_channels=3, res_blocks=1, hidden=None, unshuffle=8):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.in_channels, self.res_blocks, self.unshuffle = in_channels, res_blocks, unshuffle
        self.hidden = tuple(hidden or self.channels)
        self.unshuffle_op = nn.PixelUnshuffle(unshuffle)
        self.conv_in = nn.Conv2d(in_channels * unshuffle * unshuffle, self.hidden[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.Identity() if l == 0 else nn.Conv2d(self.hidden[l - 1], self.hidden[l], 3, stride=2, padding=1)
            for l in range(len(self.channels)))
        self.body = nn.ModuleList(nn.Sequential(*[ResBlock(h) for _ in range(res_blocks)]) for h in self.hidden)
        self.out = nn.ModuleList(nn.Conv2d(h, c, 1) for h, c in zip(self.hidden, self.channels))
        for conv in self.out:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def config(self):
        return {"channels": list(self.channels), "in_channels": self.in_channels, "res_blocks": self.res_blocks,
                "hidden": list(self.hidden), "unshuffle": self.unshuffle}

    def forward(self, maps):
        """maps [B, 3, 8h, 8w] in 0..1 -> [F_0 [B, C_0, h, w], F_1 [B, C_1, h/2, w/2], ...]."""
        x = self.conv_in(self.unshuffle_op(maps))
        feats = []
        for down, body, out in zip(self.down, self.body, self.out):
            x = body(down(x))
            feats.append(out(x))
        return feats
