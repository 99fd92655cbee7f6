"""Long-video stylization in chunks, chained through DreamStyle's first-frame condition.

Chunks of at most 81 frames overlap by `overlap` >= 1 frames: chunk k+1 starts on a frame chunk k has
already stylized, and its stylized-first-frame condition is exactly the stitched output frame at the index
where its raw video starts (so a stylizer faithful to its first frame continues the video without a
jump). The stitch keeps every input frame exactly once; frames two chunks share are cross-faded linearly
from the earlier chunk to the later one. Optionally each chunk is colour-matched to the stitched output on
the frames it shares with it (per-channel mean and std), which counters slow colour drift along the chain.
"""
from dataclasses import dataclass

import torch

MAX_CHUNK_FRAMES = 81  # Wan2.1 / DreamStyle's training clip length


@dataclass(frozen=True)
class Chunk:
    start: int   # first input frame of the chunk
    stop: int    # one past its last input frame

    @property
    def frames(self):
        return self.stop - self.start


def plan_chunks(n_frames, chunk_frames=MAX_CHUNK_FRAMES, overlap=1):
    """Chunks of at most `chunk_frames` covering [0, n_frames); consecutive chunks share `overlap` frames."""
    if n_frames < 1:
        raise ValueError(f"video: needs at least one frame, got {n_frames}")
    if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise ValueError(f"chunk_frames: expected 1..{MAX_CHUNK_FRAMES}, got {chunk_frames}")
    if n_frames > chunk_frames and not 1 <= overlap < chunk_frames:
        raise ValueError(f"overlap: expected 1..{chunk_frames - 1} (at least one frame, so each chunk starts on a "
                         f"frame the previous chunk stylized; less than chunk_frames), got {overlap}")
    chunks, start = [], 0
    while True:
        stop = min(start + chunk_frames, n_frames)
        chunks.append(Chunk(start, stop))
        if stop == n_frames:
            return chunks
        start = stop - overlap


def colour_match(images, reference, shared):
    """`images` [N, H, W, C] shifted per channel so that its first `shared` frames have the mean and std of
    `reference` (the stitched frames they overlap), clamped to [0, 1]."""
    ours, theirs = images[:shared].float(), reference.float()
    dims = tuple(range(ours.ndim - 1))
    scale = theirs.std(dim=dims) / ours.std(dim=dims).clamp_min(1e-6)
    out = (images.float() - ours.mean(dim=dims)) * scale + theirs.mean(dim=dims)
    return out.clamp(0, 1).to(images.dtype)


class Stitcher:
    """Collects chunk outputs into one video; frames shared by two chunks are cross-faded linearly
    from the earlier chunk to the later one."""

    def __init__(self, n_frames):
        self.n_frames = n_frames
        self.frames = None
        self.filled = 0

    def add(self, chunk, images, match_colour=False):
        if images.shape[0] != chunk.frames:
            raise ValueError(f"chunk {chunk.start}..{chunk.stop}: got {images.shape[0]} frames, expected {chunk.frames}")
        if self.frames is None:
            self.frames = images.new_empty(self.n_frames, *images.shape[1:])
        overlap = self.filled - chunk.start
        if overlap < 0:
            raise ValueError(f"chunk starting at {chunk.start} leaves frames {self.filled}..{chunk.start - 1} uncovered")
        if overlap and match_colour:
            images = colour_match(images, self.frames[chunk.start:self.filled], overlap)
        if overlap:
            w = torch.arange(1, overlap + 1, dtype=images.dtype, device=images.device) / (overlap + 1)
            w = w.view(-1, *([1] * (images.ndim - 1)))
            self.frames[chunk.start:self.filled] = (1 - w) * self.frames[chunk.start:self.filled] + w * images[:overlap]
        self.frames[self.filled:chunk.stop] = images[overlap:]
        self.filled = chunk.stop

    def result(self):
        if self.filled != self.n_frames:
            raise ValueError(f"only {self.filled} of {self.n_frames} frames were stitched")
        return self.frames


def stylize_in_chunks(video, stylize, chunk_frames=MAX_CHUNK_FRAMES, overlap=1, first_frame=None, match_colour=False):
    """Stylize `video` [N, H, W, C] chunk by chunk: stylize(index, chunk, frames, first_frame) -> stylized frames.

    The first chunk gets `first_frame` (or None); chunk k+1 gets the stitched output frame at its own start.
    """
    chunks = plan_chunks(video.shape[0], chunk_frames, overlap)
    stitcher = Stitcher(video.shape[0])
    for i, chunk in enumerate(chunks):
        if i > 0:
            first_frame = stitcher.frames[chunk.start:chunk.start + 1].clone()
        out = stylize(i, chunk, video[chunk.start:chunk.stop], first_frame)
        stitcher.add(chunk, out.to(video.device, video.dtype), match_colour=match_colour)
    return stitcher.result()
