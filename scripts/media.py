"""Small video helpers on PyAV (which ComfyUI ships): write frames to a file, read them back."""
import av
import numpy as np


def write_video(path, frames, fps=16, codec="libx264"):
    """frames: uint8 [N, H, W, 3] (H and W even for yuv420p codecs)."""
    frames = np.asarray(frames)
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p" if codec in ("libx264", "h264", "mpeg4") else "rgb24"
        if codec in ("libx264", "h264"):
            stream.options = {"crf": "12"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path):
    """uint8 [N, H, W, 3] of every frame of the first video stream."""
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
