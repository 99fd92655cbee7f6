"""Long-video stylization in chunks: each chunk is conditioned on the last stylized frame of the
previous chunk as its stylized first frame (DreamStyle's first-frame condition), and the chunks are
stitched so that every input frame appears exactly once in the output."""
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


def plan_chunks(n_frames, chunk_frames=MAX_CHUNK_FRAMES, overlap=0):
    """Chunks of at most `chunk_frames` covering [0, n_frames); consecutive chunks share `overlap` frames."""
    if n_frames < 1:
        raise ValueError(f"video: needs at least one frame, got {n_frames}")
    if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise ValueError(f"chunk_frames: expected 1..{MAX_CHUNK_FRAMES}, got {chunk_frames}")
    if not 0 <= overlap < chunk_frames:
        raise ValueError(f"overlap: expected 0..{chunk_frames - 1} (less than chunk_frames), got {overlap}")
    chunks, start = [], 0
    while True:
        stop = min(start + chunk_frames, n_frames)
        chunks.append(Chunk(start, stop))
        if stop == n_frames:
            return chunks
        start = stop - overlap


class Stitcher:
    """Collects chunk outputs into one video; frames shared by two chunks are cross-faded linearly
    from the earlier chunk to the later one."""

    def __init__(self, n_frames):
        self.n_frames = n_frames
        self.frames = None
        self.filled = 0

    def add(self, chunk, images):
        if images.shape[0] != chunk.frames:
            raise ValueError(f"chunk {chunk.start}..{chunk.stop}: got {images.shape[0]} frames, expected {chunk.frames}")
        if self.frames is None:
            self.frames = images.new_empty(self.n_frames, *images.shape[1:])
        overlap = self.filled - chunk.start
        if overlap < 0:
            raise ValueError(f"chunk starting at {chunk.start} leaves frames {self.filled}..{chunk.start - 1} uncovered")
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
