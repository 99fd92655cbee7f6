"""MLD's text features from a ComfyUI CLIP object, and a frozen bag-of-words stand-in for tests and the toy.

`clip_text_features(clip, texts)`: CLIP's projected pooled text embedding per prompt (what MLD reads,
get_text_features, not L2-normalised), from any object with ComfyUI's CLIP interface (tokenize,
encode_from_tokens); the same tensor CLIPTextEncode puts in CONDITIONING as pooled_output.

HashTextEncoder: a deterministic bag-of-words embedding, the test fixture's text space.

Each lower-cased word maps to a fixed unit Gaussian vector seeded by crc32(word) and the encoder
seed; a sentence is the normalised sum. No weights, so a model file only stores (dim, seed). Any
other frozen embedding of the same width (a ComfyUI CLIP pooled output, a CLIP-vision embedding)
can be fed wherever this one is used, once the model was trained on that space.
"""
import re
import zlib

import torch


class HashTextEncoder:
    def __init__(self, dim=64, seed=0):
        self.dim, self.seed = int(dim), int(seed)
        self._cache = {}

    def _word(self, word):
        if word not in self._cache:
            g = torch.Generator().manual_seed((zlib.crc32(word.encode()) ^ self.seed) & 0x7FFFFFFF)
            v = torch.randn(self.dim, generator=g)
            self._cache[word] = v / v.norm()
        return self._cache[word]

    def __call__(self, texts):
        """[B, dim] embeddings of a list of strings (an empty string gives the zero vector)."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i] += self._word(word)
            n = out[i].norm()
            if n > 0:
                out[i] /= n
        return out


def clip_text_features(clip, texts):
    """[N, C] pooled, projected CLIP text features of a list of prompts."""
    rows = []
    for t in texts:
        _, pooled = clip.encode_from_tokens(clip.tokenize(t), return_pooled=True)
        rows.append(pooled.reshape(-1).float().cpu())
    return torch.stack(rows)
