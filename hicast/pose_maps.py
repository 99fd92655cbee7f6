"""OpenPose-style body skeleton maps from mediapipe's bundled pose model (33 landmarks).

The 33 mediapipe landmarks are mapped to OpenPose's 18 body keypoints (neck = shoulder midpoint) and
drawn with OpenPose's limb colours on black, the convention pose adapters and ControlNets expect.
"""
import math

import cv2
import numpy as np

from .image_batch import as_rgb_batch, from_uint8, to_uint8
from .mediapipe_runtime import solutions

# OpenPose body-18 order: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip,
# r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear  <- mediapipe indices (None = neck)
MEDIAPIPE_TO_OPENPOSE = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))


def openpose_keypoints(landmarks, width, height, min_visibility=0.5):
    """mediapipe landmark list -> 18 OpenPose keypoints in pixels, None where not visible."""
    pts = []
    for idx in MEDIAPIPE_TO_OPENPOSE:
        group = (11, 12) if idx is None else (idx,)
        lms = [landmarks[i] for i in group]
        if min(lm.visibility for lm in lms) < min_visibility:
            pts.append(None)
            continue
        pts.append((sum(lm.x for lm in lms) / len(lms) * width, sum(lm.y for lm in lms) / len(lms) * height))
    return pts


def draw_openpose(keypoints, height, width, stick_width=4, canvas=None):
    """Draw one person's limbs (filled ellipses, colour * 0.6) and joints (circles) on CANVAS (new black uint8)."""
    canvas = np.zeros((height, width, 3), np.uint8) if canvas is None else canvas
    for (a, b), colour in zip(LIMBS, COLOURS):
        if keypoints[a] is None or keypoints[b] is None:
            continue
        (xa, ya), (xb, yb) = keypoints[a], keypoints[b]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), stick_width),
                                int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in colour])
    for point, colour in zip(keypoints, COLOURS):
        if point is not None:
            cv2.circle(canvas, (int(point[0]), int(point[1])), stick_width, colour, thickness=-1)
    return canvas


def detect_poses(images, min_visibility=0.5, progress=None):
    """Per frame: [the 18 OpenPose keypoints of the most prominent person] ([] when nobody is found; mediapipe's
    bundled pose model is single-person, use an OpenPose ONNX model for several people)."""
    frames = to_uint8(as_rgb_batch(images, "image"))
    out = []
    with solutions("pose").pose.Pose(static_image_mode=True, model_complexity=1) as model:
        for i, f in enumerate(frames):
            result = model.process(f)
            lms = result.pose_landmarks
            out.append([] if lms is None else
                       [openpose_keypoints(lms.landmark, f.shape[1], f.shape[0], min_visibility)])
            if progress:
                progress(i + 1, len(frames))
    return out


def render_frame(people, height, width, stick_width):
    canvas = np.zeros((height, width, 3), np.uint8)
    for keypoints in people:
        draw_openpose(keypoints, height, width, stick_width, canvas)
    return canvas


def render_poses(frames, height, width, stick_width, device):
    """Per frame a list of people (each 18 OpenPose keypoints) -> skeleton map batch [B, H, W, 3] on DEVICE."""
    return from_uint8(np.stack([render_frame(people, height, width, stick_width) for people in frames]), device)


def pose_map(images, min_visibility=0.5, stick_width=4, progress=None):
    """OpenPose-coloured skeleton map [B, H, W, 3] (all black for frames without a person)."""
    images = as_rgb_batch(images, "image")
    _, h, w, _ = images.shape
    return render_poses(detect_poses(images, min_visibility, progress), h, w, stick_width, images.device)
