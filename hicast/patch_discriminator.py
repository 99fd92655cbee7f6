"""A small PatchGAN discriminator: image [B, 3, H, W] -> real/fake logits per receptive-field patch."""
import torch.nn as nn


class PatchDiscriminator(nn.Module):
    def __init__(self, width=32, layers=3):
        super().__init__()
        mods, c = [], 3
        for i in range(layers):
            mods += [nn.Conv2d(c, width * 2 ** i, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = width * 2 ** i
        mods.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, images):
        return self.net(images * 2.0 - 1.0)
