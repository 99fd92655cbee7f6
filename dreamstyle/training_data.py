"""The training examples of a DreamStyle dataset folder, encoded once through the feature cache, and
the deterministic order in which a run visits them.

`Encoders` holds the three encoders as callables (no ComfyUI here; the node and the CLI build them):
  vae_encode(video float [T, H, W, 3] in [0, 1]) -> latent [1, 16, F, h, w]   (T = 4k+1, H, W % 16 == 0)
  text_encode(caption str)                      -> context [1, L, 4096]
  clip_vision_encode(image float [1, H, W, 3])  -> features [1, 257, 1280]     (optional)
`latent_in` maps a VAE latent to what the diffusion model sees (ComfyUI's process_latent_in).

Sample g of a run (g = 0, 1, 2, ... over the whole run, across micro-batches, steps and ranks) is
pair order(epoch)[g mod n] with epoch = g div n, order(epoch) a permutation drawn from (seed, epoch);
its noise, σ and style reference come from generators seeded by (seed, g). So the data position
of a run is just g, and resuming at g replays exactly what an uninterrupted run does.
"""
import hashlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .dataset_reader import DatasetError, iter_pairs
from .video_padding import fit_image, pad_video


@dataclass
class Encoders:
    vae_encode: Callable
    text_encode: Callable
    clip_vision_encode: Optional[Callable] = None
    fingerprint: str = "default"
    latent_in: Callable = staticmethod(lambda z: z)


def load_pairs(folder, split="train", what="dataset_dir"):
    """The pairs of SPLIT in FOLDER; a ValueError naming the input when there are none."""
    try:
        pairs = list(iter_pairs(folder, split))
    except DatasetError as e:
        raise ValueError(f"{what}: {e}") from e
    if not pairs:
        raise ValueError(f"{what}: {folder} has no pairs in split {split!r}")
    return pairs


def _frames(array):
    return torch.from_numpy(np.array(array, copy=True)).float() / 255.0


class EncodedPairs:
    """Encoder outputs for the pairs of a dataset, computed once and then read from the FeatureCache."""

    def __init__(self, pairs, encoders: Encoders, cache):
        self.pairs, self.encoders, self.cache = pairs, encoders, cache

    def __len__(self):
        return len(self.pairs)

    def _media_key(self, pair, key):
        return f"{pair.record[key]['sha256']}"

    def video(self, i, key):
        """VAE latent [16, F, h, w] of the raw or stylized video of pair I."""
        pair = self.pairs[i]
        load = pair.load_raw if key == "raw" else pair.load_stylized
        return self.cache.get("vae_video", self._media_key(pair, key),
                              lambda: self.encoders.vae_encode(pad_video(_frames(load())))[0])

    def first_frame(self, i):
        """VAE latent [16, 1, h, w] of the stylized first frame of pair I (frame 0 of x^sty)."""
        pair = self.pairs[i]

        def compute():
            frame = _frames(next(iter(pair.stylized_frames())))[None]
            return self.encoders.vae_encode(pad_video(frame, frames=1))[0]
        return self.cache.get("vae_first_frame", self._media_key(pair, "stylized"), compute)

    def _ref_image(self, i, k):
        pair = self.pairs[i]
        raw = pair.record["raw"]
        image = _frames(_read_ref(pair, k))[None]
        return fit_image(image, raw["height"], raw["width"])

    def style_image(self, i, k):
        """VAE latent [16, 1, h, w] of style reference K of pair I, fitted to the video's size."""
        pair = self.pairs[i]
        key = f"{pair.record['refs'][k]['sha256']}@{pair.record['raw']['height']}x{pair.record['raw']['width']}"
        return self.cache.get("vae_style_image", key,
                              lambda: self.encoders.vae_encode(pad_video(self._ref_image(i, k), frames=1))[0])

    def clip_features(self, i, k):
        """CLIP-vision features [257, 1280] of style reference K of pair I, or None without an encoder."""
        if self.encoders.clip_vision_encode is None:
            return None
        pair = self.pairs[i]
        return self.cache.get("clip_vision", pair.record["refs"][k]["sha256"],
                              lambda: self.encoders.clip_vision_encode(_frames(_read_ref(pair, k))[None])[0])

    def text(self, caption):
        """Text context [L, 4096] of CAPTION."""
        key = hashlib.sha256(caption.encode()).hexdigest()
        return self.cache.get("text", key, lambda: self.encoders.text_encode(caption)[0])

    def encode_all(self, progress=None):
        """Encode every feature a run can ask for (both videos, first frame, every reference, both captions),
        so the encoders can be unloaded before training. PROGRESS(done, total) per pair."""
        for i, pair in enumerate(self.pairs):
            self.video(i, "raw")
            self.video(i, "stylized")
            self.first_frame(i)
            for k in range(self.num_refs(i)):
                self.style_image(i, k)
                self.clip_features(i, k)
            self.text(pair.caption_ns)
            self.text(pair.caption_sty)
            if progress:
                progress(i + 1, len(self.pairs))

    def num_refs(self, i):
        return len(self.pairs[i].record["refs"])


def _read_ref(pair, k):
    from .dataset_media import read_png
    return read_png(pair.path(pair.record["refs"][k]["path"]))


class DataOrder:
    """Sample g -> pair index: a fresh permutation of the n pairs every epoch, drawn from (seed, epoch)."""

    def __init__(self, n, seed):
        self.n, self.seed = n, seed
        self._epoch, self._perm = None, None

    def pair(self, g):
        epoch, pos = divmod(g, self.n)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, 202, epoch]).permutation(self.n)
        return int(self._perm[pos])


def sample_generator(seed, g):
    """The torch generator of sample g (its noise and σ)."""
    return torch.Generator().manual_seed(int(hashlib.sha256(f"{seed}/{g}".encode()).hexdigest()[:15], 16))


def reference_choice(seed, g, k):
    """Which of K style references sample g uses."""
    return int(np.random.default_rng([seed, 303, g]).integers(k))


def pad_contexts(contexts):
    """[L_i, D] tensors -> [B, max L, D], zero-padded (as Wan pads its text context)."""
    length = max(c.shape[0] for c in contexts)
    out = torch.zeros(len(contexts), length, contexts[0].shape[1])
    for i, c in enumerate(contexts):
        out[i, :c.shape[0]] = c
    return out
