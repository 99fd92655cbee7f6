"""The frame layout of one DreamStyle sampling call: the single source of truth for which latent
frames are the stylized first frame, the video and the style image.

DreamStyle orders the latent sequence frame-wise as  z^1st_t ⊕f z^v_t ⊕f z^s_t : an optional
stylized first frame prepended, the video, an optional style image appended. The conditioning builds
a layout; the token-LoRA routing reads its per-frame token types; the trainer puts the loss on its
video frames; the trim step keeps its video frames and restores the input's pixel frame count and size.
"""
from dataclasses import asdict, dataclass

import torch

# Token types of the token-specific LoRA, in the order of its up matrices W_up^i.
FIRST_FRAME, VIDEO, STYLE_IMAGE = 0, 1, 2
TOKEN_TYPE_NAMES = ("first_frame", "video", "style_image")


@dataclass(frozen=True)
class FrameLayout:
    first_frame: int            # latent frames before the video (0 or 1)
    video: int                  # latent frames of the video
    style_image: int            # latent frames after the video (0 or 1)
    pixel_frames: int           # frames of the input video, before padding to 4k+1
    pixel_height: int           # input size, before padding to multiples of 16
    pixel_width: int
    padded_frames: int          # 4k+1 frames actually encoded
    padded_height: int
    padded_width: int

    def __post_init__(self):
        if self.video < 1:
            raise ValueError(f"a DreamStyle layout needs at least one video latent frame, got {self.video}")
        if self.first_frame not in (0, 1) or self.style_image not in (0, 1):
            raise ValueError(f"first_frame and style_image take 0 or 1 latent frames, got "
                             f"{self.first_frame} and {self.style_image}")

    @property
    def total(self):
        return self.first_frame + self.video + self.style_image

    @property
    def video_slice(self):
        return slice(self.first_frame, self.first_frame + self.video)

    def frame_types(self):
        """Token type of each latent frame: [total] long tensor (FIRST_FRAME / VIDEO / STYLE_IMAGE)."""
        types = [FIRST_FRAME] * self.first_frame + [VIDEO] * self.video + [STYLE_IMAGE] * self.style_image
        return torch.tensor(types, dtype=torch.long)

    def condition_mask(self):
        """DreamStyle's mask per latent frame: 1 on condition frames (first frame, style image), 0 on video."""
        return (self.frame_types() != VIDEO).float()

    def describe(self):
        parts = []
        if self.padded_frames != self.pixel_frames:
            parts.append(f"video padded from {self.pixel_frames} to {self.padded_frames} frames (Wan needs 4k+1) "
                         f"by repeating the last frame; the result is cut back to {self.pixel_frames}")
        if (self.padded_height, self.padded_width) != (self.pixel_height, self.pixel_width):
            parts.append(f"size padded from {self.pixel_width}x{self.pixel_height} to "
                         f"{self.padded_width}x{self.padded_height} (multiples of 16) by edge replication; "
                         f"the result is cropped back")
        frames = [f"{n} {name}" for n, name in ((self.first_frame, "first-frame"), (self.video, "video"),
                                                (self.style_image, "style-image")) if n]
        parts.append(f"latent frames: {' + '.join(frames)}")
        return "; ".join(parts)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


def token_type_runs(frame_types, tokens_per_frame):
    """Run-length encode per-frame token types over the patchified sequence.

    After Wan's (1, 2, 2) patchify, latent frame f becomes tokens [f*n, (f+1)*n) with n = tokens_per_frame.
    Returns [(token_type, start, stop), ...] with adjacent frames of one type merged.
    """
    runs = []
    for f, t in enumerate(frame_types.tolist()):
        start, stop = f * tokens_per_frame, (f + 1) * tokens_per_frame
        if runs and runs[-1][0] == t:
            runs[-1] = (t, runs[-1][1], stop)
        else:
            runs.append((t, start, stop))
    return runs
