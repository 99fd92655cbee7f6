"""OpenPose-style body keypoints from a user-provided ONNX model, run with onnxruntime (the
onnxruntime-gpu or CPU wheel, whichever is installed; the node prefers a GPU provider).

Contract (the CMU OpenPose body model's, as exported to ONNX by the ecosystem's preprocessors):
- input: the model's first input, float32 [1, 3, H_in, W_in], BGR, x = v / 256 - 0.5 for 8-bit values v.
  H_in, W_in are the model's own when it fixes them; otherwise the frame is resized so its short side
  is `resolution`, both sides rounded to a multiple of 8 (OpenPose's stride).
- outputs: the first output with 18 or 19 channels, keypoint heatmaps [1, K, h, w] in OpenPose body-18
  order (nose, neck, r-shoulder, ... l-ear; a 19th background channel is dropped), and, when the model has
  one, the 38-channel part affinity fields [1, 38, h, w].

Decoding: with PAFs, every person gets its own skeleton (hicast/openpose_grouping.py: peaks, PAF limb
scores, greedy matching); without, one person per frame: each heatmap is resized bilinearly to the frame,
U_k = resize(H_k); keypoint_k = argmax_p U_k(p), kept when U_k(keypoint_k) > threshold. The people are drawn
with pose_maps.draw_openpose, so both backends give the same colour-coded skeletons.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from .image_batch import as_rgb_batch
from .openpose_grouping import PAF_LIMBS, group_people
from .pose_maps import COLOURS, render_poses

KEYPOINTS = len(COLOURS)  # 18


def onnx_model_files(root):
    """The .onnx files directly in ROOT (sorted), [] when ROOT does not exist."""
    if not os.path.isdir(root):
        return []
    return sorted(f for f in os.listdir(root) if f.lower().endswith(".onnx"))


def load_onnx_pose(path, folder_hint=None, providers=("CPUExecutionProvider",)):
    """An onnxruntime session for PATH on PROVIDERS (in order of preference); a clear error naming the
    folder when there is no such file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no pose ONNX model at {path}: put an OpenPose-style body model (.onnx: BGR image [1, 3, H, W] -> "
            f"keypoint heatmaps [1, 18|19, h, w]) in {folder_hint or os.path.dirname(path)}, or choose "
            "'mediapipe (built in)'")
    import onnxruntime
    return onnxruntime.InferenceSession(path, providers=list(providers))


def input_size(session, height, width, resolution):
    """(H_in, W_in): the model's fixed input size, else the frame scaled to short side RESOLUTION, /8."""
    shape = session.get_inputs()[0].shape
    if isinstance(shape[2], int) and isinstance(shape[3], int):
        return shape[2], shape[3]
    scale = resolution / min(height, width)
    return max(8, round(height * scale / 8) * 8), max(8, round(width * scale / 8) * 8)


def heatmap_output(outputs):
    """The [1, 18|19, h, w] keypoint-heatmap output (first match), background channel dropped."""
    for out in outputs:
        if out.ndim == 4 and out.shape[1] in (KEYPOINTS, KEYPOINTS + 1):
            return out[:, :KEYPOINTS]
    shapes = [tuple(o.shape) for o in outputs]
    raise ValueError(f"pose ONNX model: expected an output of keypoint heatmaps [1, 18|19, h, w], got {shapes}")


def paf_output(outputs):
    """The [1, 38, h, w] part-affinity-field output, or None when the model has none."""
    return next((out for out in outputs if out.ndim == 4 and out.shape[1] == 2 * len(PAF_LIMBS)), None)


def peak_keypoints(heatmaps, height, width, threshold=0.1):
    """heatmaps [K, h, w] -> K keypoints (x, y) in frame pixels (None below THRESHOLD): argmax of the
    bilinearly upsampled map U_k, pixel centres (x + 0.5, y + 0.5)."""
    up = F.interpolate(torch.as_tensor(heatmaps, dtype=torch.float32)[None], size=(height, width),
                       mode="bilinear", align_corners=False)[0]
    best, idx = up.flatten(1).max(dim=1)
    return [(float(i % width) + 0.5, float(i // width) + 0.5) if v > threshold else None
            for v, i in zip(best.tolist(), idx.tolist())]


def onnx_pose_keypoints(session, images, threshold=0.1, resolution=512, progress=None):
    """Per frame of an IMAGE batch: the people found by SESSION, each 18 OpenPose keypoints (frames run one by one)."""
    images = as_rgb_batch(images, "image")
    b, h, w, _ = images.shape
    size = input_size(session, h, w, resolution)
    name = session.get_inputs()[0].name
    people = []
    for i in range(b):
        x = images[i:i + 1].permute(0, 3, 1, 2).cpu()
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.flip(1) * (255.0 / 256.0) - 0.5  # RGB 0..1 -> BGR v/256 - 0.5
        outputs = session.run(None, {name: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        heat, paf = heatmap_output(outputs)[0], paf_output(outputs)
        if paf is None:
            one = peak_keypoints(heat, h, w, threshold)
            people.append([one] if any(p is not None for p in one) else [])
        else:
            people.append(group_people(heat, paf[0], h, w, threshold))
        if progress:
            progress(i + 1, b)
    return people


def onnx_pose_map(session, images, threshold=0.1, stick_width=4, resolution=512, progress=None):
    """OpenPose-coloured skeleton map [B, H, W, 3] from an ONNX body model (see the module docstring)."""
    images = as_rgb_batch(images, "image")
    _, h, w, _ = images.shape
    people = onnx_pose_keypoints(session, images, threshold, resolution, progress)
    return render_poses(people, h, w, stick_width, images.device)
