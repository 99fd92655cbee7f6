"""Media files of the paired-data format: lossless FFV1/Matroska videos and PNG references.

Videos are written frame by frame and read back as a generator, so no reader or writer ever holds a
whole video unless it asks for one (`read_video`). FFV1 with the bgr0 pixel format is bit-exact for
8-bit RGB, and `slicecrc` makes a damaged file fail to decode instead of decoding to wrong pixels.
"""
import hashlib
import os
from fractions import Fraction

import numpy as np

FFV1_OPTIONS = {"level": "3", "slicecrc": "1"}


def check_frame(frame, what):
    """Raise ValueError unless FRAME is a uint8 [H, W, 3] array."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"{what}: expected uint8 frames of shape [H, W, 3], got {desc}")


def write_video(path, frames, fps, what="video"):
    """Write FRAMES (an iterable of uint8 [H, W, 3]) to PATH; return (frame count, width, height)."""
    import av
    count, size = 0, None
    with av.open(path, "w", format="matroska") as container:
        stream = None
        for frame in frames:
            check_frame(frame, what)
            h, w = frame.shape[:2]
            if stream is None:
                size = (w, h)
                stream = container.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
                stream.options = dict(FFV1_OPTIONS)
            elif (w, h) != size:
                raise ValueError(f"{what}: frame {count} is {w}x{h}, frame 0 was {size[0]}x{size[1]}")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError(f"{what}: no frames")
        for packet in stream.encode():
            container.mux(packet)
    return count, size[0], size[1]


def iter_video(path):
    """Yield the frames of the video at PATH as uint8 [H, W, 3] arrays, one at a time."""
    import av
    with av.open(path) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_video(path):
    """The whole video at PATH as one uint8 [T, H, W, 3] array."""
    return np.stack(list(iter_video(path)))


def probe_video(path, decode):
    """(frames, width, height, fps) of PATH: counts packets, or decodes every frame when DECODE is true.

    Raises whatever PyAV raises for a file that is not a readable video.
    """
    import av
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        fps = float(stream.average_rate or 0)
        if decode:
            frames = 0
            for frame in container.decode(stream):
                if (frame.width, frame.height) != (w, h):
                    raise ValueError(f"frame {frames} is {frame.width}x{frame.height}, stream says {w}x{h}")
                frames += 1
        else:
            frames = sum(1 for p in container.demux(stream) if p.size)
    return frames, w, h, fps


def write_png(path, image, what="image"):
    """Write a uint8 [H, W, 3] array as PNG; return (width, height)."""
    from PIL import Image
    check_frame(image, what)
    Image.fromarray(image, "RGB").save(path, format="PNG")
    return image.shape[1], image.shape[0]


def read_png(path):
    """A PNG as a uint8 [H, W, 3] array (fully decoded, so truncated files raise)."""
    from PIL import Image
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_path(path):
    """fsync a file or (where the OS allows) a directory, so a rename or append survives a crash."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on Windows; NTFS journals the rename itself
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
