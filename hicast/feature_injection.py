"""The one patch point: h_l <- h_l + sum_i w_i F_{i,l}(m_i) after the last ResBlock of encoder level l.

AdapterInjection is called like ComfyUI's input_block_patch, p(h, transformer_options), and the trainers
call the same object, so training and inference inject identically.
"""
import logging

import torch.nn.functional as F

from .batching import tile_to_batch
from .unet_levels import check_widths

log = logging.getLogger("hicast")


def fit_maps_to_latent(maps, latent_hw, name, factor=8):
    """maps [B, 3, H, W] -> [B, 3, 8h, 8w] for a latent grid (h, w), resized with a log line when they differ."""
    want = (latent_hw[0] * factor, latent_hw[1] * factor)
    if tuple(maps.shape[-2:]) == want:
        return maps
    log.warning("HiCAST: map '%s' is %dx%d but the latent grid %dx%d needs %dx%d; resizing the map",
                name, maps.shape[-1], maps.shape[-2], latent_hw[1], latent_hw[0], want[1], want[0])
    return F.interpolate(maps, size=want, mode="bilinear", align_corners=False, antialias=True)


class AdapterInjection:
    def __init__(self, levels, entries):
        """ENTRIES: (name, StyleAdapter, maps [B, H, W, 3] 0..1, weight); zero weights are dropped."""
        self.levels = levels
        self.by_block = {lv.block: l for l, lv in enumerate(levels)}
        self.entries = [e for e in entries if e[3] != 0]
        for name, adapter, _, _ in self.entries:
            check_widths(levels, adapter.channels, f"adapter '{name}'")
        self._cache = {}

    def __bool__(self):
        return bool(self.entries)

    def features(self, latent_hw, device, dtype):
        key = (tuple(latent_hw), device, dtype)
        if key not in self._cache:
            total = None
            for name, adapter, maps, weight in self.entries:
                m = fit_maps_to_latent(maps.permute(0, 3, 1, 2).to(device), latent_hw, name)
                p = next(adapter.parameters())  # where ComfyUI's memory manager loaded it
                feats = [weight * f.to(device=device, dtype=dtype) for f in adapter(m.to(p.device, p.dtype))]
                total = feats if total is None else [a + b for a, b in zip(total, feats)]
            self._cache = {key: total}  # one latent size at a time
        return self._cache[key]

    def __call__(self, h, transformer_options):
        kind, index = transformer_options["block"]
        if kind != "input" or index not in self.by_block:
            return h
        latent_hw = transformer_options["original_shape"][-2:]
        f = self.features(latent_hw, h.device, h.dtype)[self.by_block[index]].to(h.device)
        f = tile_to_batch(f, h.shape[0], "maps")
        if f.shape[-2:] != h.shape[-2:]:  # odd latent sizes round differently in the UNet's strided convs
            f = F.interpolate(f, size=h.shape[-2:], mode="bilinear", align_corners=False)
        return h + f
