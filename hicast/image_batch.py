"""The one signature every extractor shares: IMAGE batch [B, H, W, 3] float 0..1 -> map batch, same shape."""
import numpy as np
import torch


def as_rgb_batch(images, name="image"):
    """Validate an IMAGE batch and return it as float [B, H, W, 3] in 0..1.

    Grey ([B, H, W] or [B, H, W, 1]) is repeated to RGB; RGBA is composited over black (alpha multiplies).
    """
    if not torch.is_tensor(images):
        raise TypeError(f"{name}: expected a torch IMAGE tensor [B, H, W, C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(-1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an IMAGE batch [B, H, W, 1|3|4], got shape {tuple(images.shape)}")
    if images.shape[0] == 0 or images.shape[1] < 2 or images.shape[2] < 2:
        raise ValueError(f"{name}: expected at least one frame of at least 2x2 pixels, got shape {tuple(images.shape)}")
    images = images.float()
    if images.shape[-1] == 1:
        images = images.expand(-1, -1, -1, 3)
    elif images.shape[-1] == 4:
        images = images[..., :3] * images[..., 3:]
    low, high = torch.aminmax(images)
    if low < 0 or high > 1:  # clamp (a full copy) only when something is out of range
        images = images.clamp(0, 1)
    return images.contiguous()


def to_uint8(images):
    """[B, H, W, 3] float 0..1 -> numpy uint8 [B, H, W, 3] in one vectorised step (round half up)."""
    return images.detach().float().mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()


def from_uint8(arrays, device):
    """numpy uint8 [B, H, W] or [B, H, W, 3] -> float [B, H, W, 3] 0..1 on DEVICE."""
    t = torch.from_numpy(np.ascontiguousarray(arrays)).to(device=device, dtype=torch.float32).div_(255.0)
    if t.ndim == 3:
        t = t.unsqueeze(-1).expand(-1, -1, -1, 3)
    return t.contiguous()


def pick_backend(device, backend):
    """'auto' -> 'cv2' on CPU (fast C loops), 'kornia' on an accelerator (batched tensor ops)."""
    if backend not in ("auto", "cv2", "kornia"):
        raise ValueError(f"backend: expected 'auto', 'cv2' or 'kornia', got {backend!r}")
    if backend != "auto":
        return backend
    return "cv2" if torch.device(device).type == "cpu" else "kornia"
