"""Wan's input constraints: 4k+1 frames and sizes divisible by 16. Pad explicitly, crop back exactly."""
import torch
import torch.nn.functional as F


def wan_frame_count(n):
    """Smallest 4k+1 >= n."""
    if n < 1:
        raise ValueError(f"a video needs at least one frame, got {n}")
    return ((n - 1 + 3) // 4) * 4 + 1


def round_up(n, multiple=16):
    return ((n + multiple - 1) // multiple) * multiple


def pad_video(video, frames=None, multiple=16):
    """[N, H, W, C] -> [frames, H', W', C]: repeat the last frame up to `frames` (default: next 4k+1) and
    replicate edges right and bottom up to multiples of `multiple`."""
    n, h, w, _ = video.shape
    frames = frames or wan_frame_count(n)
    if frames > n:
        video = torch.cat([video, video[-1:].expand(frames - n, -1, -1, -1)], dim=0)
    ph, pw = round_up(h, multiple) - h, round_up(w, multiple) - w
    if ph or pw:
        video = F.pad(video.movedim(-1, 1), (0, pw, 0, ph), mode="replicate").movedim(1, -1)
    return video


def crop_video(video, frames, height, width):
    """Undo pad_video: the first `frames` frames, top-left height x width."""
    return video[:frames, :height, :width]


def fit_image(image, height, width):
    """Resize [B, h, w, C] to cover height x width (keeping aspect) and center-crop to exactly that size."""
    b, h, w, c = image.shape
    if (h, w) == (height, width):
        return image
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    x = F.interpolate(image.movedim(-1, 1).float(), size=(nh, nw), mode="bilinear", align_corners=False,
                      antialias=scale < 1)
    top, left = (nh - height) // 2, (nw - width) // 2
    return x[:, :, top:top + height, left:left + width].movedim(1, -1).to(image.dtype)
