"""VGG-19 features for HiCAST's content and style losses, read from torchvision's vgg19 layout.

A loss-net file is a safetensors of torchvision's `vgg19().state_dict()` (keys `features.N.weight` /
`features.N.bias`, N the conv's index in torchvision's `features` Sequential; `classifier.*` is ignored).
The trunk runs to relu5_1 and returns [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1] of the ImageNet-normalised
image; L_c uses relu4_1 (CONTENT_LEVELS), L_s all five (AdaIN-style mean/std statistics). Widths are read
from the file, so a narrow random file of the same layout serves as a test fixture.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open

CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)  # torchvision features index of each conv up to conv5_1
POOL_AFTER = (2, 7, 16, 25)                              # a 2x2 max-pool follows the ReLU of these convs
TAPS = (0, 5, 10, 19, 28)                                # relu1_1 ... relu5_1 follow these convs
MAX_WIDTH = 1024
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    content_levels = (3,)  # relu4_1

    def __init__(self, widths):
        """WIDTHS: output channels of the 13 convs (torchvision: 64, 64, 128, 128, 256 x4, 512 x5)."""
        super().__init__()
        chans = (3,) + tuple(widths)
        self.features = nn.ModuleDict({str(n): nn.Conv2d(chans[i], chans[i + 1], 3, padding=1)
                                       for i, n in enumerate(CONVS)})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def forward(self, images):
        """images [B, 3, H, W] 0..1 -> [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1]."""
        x = (images - self.mean.to(images)) / self.std.to(images)
        feats = []
        for n in CONVS:
            x = F.relu(self.features[str(n)](x.to(self.features[str(n)].weight.dtype)))
            if n in TAPS:
                feats.append(x)
            if n in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return feats


def load_vgg19(path):
    """A VGG19Features from a torchvision-layout safetensors file; shapes are checked before anything is built."""
    name = path.rsplit("/", 1)[-1]
    with safe_open(path, framework="pt") as f:
        keys = set(f.keys())
        missing = [f"features.{n}.{p}" for n in CONVS for p in ("weight", "bias") if f"features.{n}.{p}" not in keys]
        if missing:
            raise ValueError(f"loss_net {name}: not a torchvision vgg19 state_dict (missing {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''})")
        widths, prev = [], 3
        for n in CONVS:
            shape = tuple(f.get_slice(f"features.{n}.weight").get_shape())
            bias = tuple(f.get_slice(f"features.{n}.bias").get_shape())
            if len(shape) != 4 or shape[1:] != (prev, 3, 3) or bias != shape[:1] or not 0 < shape[0] <= MAX_WIDTH:
                raise ValueError(f"loss_net {name}: features.{n}.weight has shape {shape} (bias {bias}); expected "
                                 f"[C <= {MAX_WIDTH}, {prev}, 3, 3] in torchvision's vgg19 layout")
            widths.append(shape[0])
            prev = shape[0]
        state = {f"features.{n}.{p}": f.get_tensor(f"features.{n}.{p}").float() for n in CONVS for p in ("weight", "bias")}
    net = VGG19Features(widths)
    net.load_state_dict(state)
    return net.requires_grad_(False).eval()
