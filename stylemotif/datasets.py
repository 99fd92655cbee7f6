"""Motion sets for training: the procedural generator, and readers of the HumanML3D and 100STYLE
on-disk layouts (features already in the 263-dim format; see docs/stylemotif.md).

HumanML3D (Guo et al.):            100STYLE as converted to HumanML3D features (SMooDi's release):
  <root>/new_joint_vecs/<id>.npy     <root>/new_joint_vecs/<id>.npy
  <root>/texts/<id>.txt              <root>/texts/<id>.txt
  <root>/{train,val,test}.txt        <root>/{train,test}.txt
  <root>/Mean.npy, Std.npy           <root>/Style_name_dict.txt  lines "<id> <Style>_<Content>_<nn>.bvh"
Text lines are "caption#tokens#start#end". Long motions are cut into windows of `window` frames.
"""
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from .humanml3d import check_features, features_from_joints
from .procedural import CAPTIONS, sample_clips


@dataclass
class MotionSet:
    features: torch.Tensor  # [N, F, 263], not normalised
    captions: list  # per clip, a list of content captions
    content: list = field(default_factory=list)  # per clip label ("" if unknown)
    style: list = field(default_factory=list)  # per clip label ("" if unknown)

    def __len__(self):
        return self.features.shape[0]

    def subset(self, idx):
        idx = list(idx)
        return MotionSet(self.features[idx], [self.captions[i] for i in idx],
                         [self.content[i] for i in idx], [self.style[i] for i in idx])


def procedural_set(n, frames=40, seed=0, **kw):
    """n procedural clips as features of `frames` frames (each from frames + 1 joint frames)."""
    clips = sample_clips(n, frames + 1, seed, **kw)
    feats = torch.stack([features_from_joints(c.joints) for c in clips])
    return MotionSet(feats, [list(CAPTIONS[c.content]) for c in clips], [c.content for c in clips], [c.style for c in clips])


def _read_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _read_captions(path):
    with open(path) as f:
        return [line.split("#")[0].strip() for line in f if line.strip()]


def _windows(motion_dir, text_dir, ids, window, labels):
    feats, caps, styles = [], [], []
    for i in ids:
        path = os.path.join(motion_dir, i + ".npy")
        if not os.path.exists(path):
            continue
        x = check_features(np.load(path, allow_pickle=False), path)
        captions = _read_captions(os.path.join(text_dir, i + ".txt")) if os.path.exists(os.path.join(text_dir, i + ".txt")) else [""]
        for start in range(0, x.shape[0] - window + 1, window):
            feats.append(x[start:start + window])
            caps.append(captions)
            styles.append(labels.get(i, ""))
    if not feats:
        raise FileNotFoundError(f"no motion of at least {window} frames found under {motion_dir} for the listed ids")
    return MotionSet(torch.stack(feats), caps, [""] * len(feats), styles)


def load_humanml3d(root, split="train", window=40):
    """HumanML3D windows with their captions (content labels unknown, style labels empty)."""
    return _windows(os.path.join(root, "new_joint_vecs"), os.path.join(root, "texts"),
                    _read_ids(os.path.join(root, f"{split}.txt")), window, {})


def load_100style(root, split="train", window=40):
    """100STYLE windows labelled with their style name from Style_name_dict.txt."""
    labels = {}
    with open(os.path.join(root, "Style_name_dict.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                labels[parts[0]] = parts[1].split("_")[0]
    return _windows(os.path.join(root, "new_joint_vecs"), os.path.join(root, "texts"),
                    _read_ids(os.path.join(root, f"{split}.txt")), window, labels)
