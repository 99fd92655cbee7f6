"""Weight-free edge maps: Canny and a soft-edge (blurred Sobel magnitude) variant.

Both take an IMAGE batch [B, H, W, 3] float 0..1 and return a map batch of the same shape (white edges
on black), deterministic and batched. Canny runs cv2.Canny on the CPU (C loops, frames spread over a
thread pool since OpenCV releases the GIL) and kornia's batched tensor Canny on an accelerator, where
cv2 would force a device round trip; kornia's Canny is ~700x slower than cv2 on this CPU.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import kornia
import torch

from .image_batch import as_rgb_batch, pick_backend, to_uint8


def _check_thresholds(low, high):
    if not (0 <= low <= high):
        raise ValueError(f"low_threshold/high_threshold: expected 0 <= low <= high, got low={low}, high={high}")


def _cv2_canny_frame(rgb, low, high):
    return cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high, L2gradient=True)


def canny(images, low_threshold=100, high_threshold=200, backend="auto", workers=None):
    """Canny edges (hysteresis thresholds on the L2 Sobel magnitude of the 0..255 grey image).

    backend 'auto' picks cv2 on CPU and kornia elsewhere; kornia gets the same thresholds mapped to its
    normalised Sobel (magnitude / (255 * 8)) and no pre-blur, so both threshold the same gradient.
    """
    images = as_rgb_batch(images, "image")
    _check_thresholds(low_threshold, high_threshold)
    if pick_backend(images.device, backend) == "cv2":
        out = torch.empty(images.shape, dtype=torch.float32)

        def one(i):  # frame by frame, so each frame's conversions stay in cache
            edges = _cv2_canny_frame(to_uint8(images[i:i + 1])[0], low_threshold, high_threshold)
            out[i] = torch.from_numpy(edges).unsqueeze(-1)

        # cv2 already spreads one Canny over its own threads; a pool on top only helps when it does not
        workers = workers or (1 if cv2.getNumThreads() > 1 else min(len(images), os.cpu_count() or 1))
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(len(images))))
        else:
            for i in range(len(images)):
                one(i)
        return out.div_(255.0).to(images.device)
    grey = kornia.color.rgb_to_grayscale(images.permute(0, 3, 1, 2))
    grey = torch.round(grey * 255.0) / 255.0  # the same 8-bit grey cv2 sees
    scale = 255.0 * 8.0
    _, edges = kornia.filters.canny(grey, low_threshold / scale, high_threshold / scale,
                                    kernel_size=(1, 1), sigma=(1.0, 1.0))
    return edges.permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous()


def soft_edge(images, sigma=1.5, gamma=0.6):
    """Soft edges: m = (|∇(G_σ * I_grey)| / max|∇(G_σ * I_grey)|)^γ per frame, Sobel gradient, reflect borders.

    Weight-free stand-in for HED/PiDiNet soft edges; gamma < 1 lifts faint contours.
    """
    images = as_rgb_batch(images, "image")
    if sigma <= 0 or gamma <= 0:
        raise ValueError(f"sigma/gamma: expected positive numbers, got sigma={sigma}, gamma={gamma}")
    grey = kornia.color.rgb_to_grayscale(images.permute(0, 3, 1, 2))
    k = 2 * int(round(3 * sigma)) + 1
    blurred = kornia.filters.gaussian_blur2d(grey, (k, k), (sigma, sigma), border_type="reflect")
    grad = kornia.filters.spatial_gradient(blurred, mode="sobel", normalized=False)  # [B, 1, 2, H, W]
    mag = torch.sqrt(grad[:, :, 0] ** 2 + grad[:, :, 1] ** 2)
    peak = mag.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (mag / peak).pow(gamma).permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous()
