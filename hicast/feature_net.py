"""A fixed, seeded random-feature phi: the TEST FIXTURE for the content/style losses.

Real training uses VGG-19 features from a user's file (hicast/vgg_features.py); this stands in for it in
tests and in the toy pack-internal runs, where no pretrained weights exist. Any module returning a list
of feature maps (with `content_levels`, the indices L_c uses) can be passed to the trainer.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class RandomFeatureNet(nn.Module):
    content_levels = None  # L_c on every level

    def __init__(self, widths=(32, 64, 128), seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = (3,) + tuple(widths)
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(len(widths)))
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()
        self.requires_grad_(False)

    def forward(self, images):
        """images [B, 3, H, W] 0..1 -> [phi_1, phi_2, phi_3], each level at half the previous size."""
        feats, x = [], images
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x if i == 0 else F.avg_pool2d(x, 2)))
            feats.append(x)
        return feats
