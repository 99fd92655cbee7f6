"""A disk cache of encoder outputs (VAE latents, text and CLIP-vision features) keyed by content hash.

Key = sha256(namespace, kind, content key), where the namespace names the encoders (a fingerprint of
their weights) and the content key names the input (the paired-data format's sha256 of the media
file plus what was taken from it, or the caption text). One entry is one safetensors file written
atomically with a checksum; an unreadable or damaged entry is recomputed and rewritten, never used.
A second epoch therefore reads every feature from disk and calls no encoder.
"""
import hashlib
import logging
import os

from .lora_file import LoRAFileError, read_safetensors, write_safetensors_atomic

log = logging.getLogger("UniStyle.DreamStyle")


class FeatureCache:
    def __init__(self, folder, namespace):
        self.folder = os.path.abspath(folder)
        self.namespace = namespace
        self.hits = self.misses = 0
        os.makedirs(self.folder, exist_ok=True)

    def path(self, kind, content_key):
        h = hashlib.sha256(f"{self.namespace}\0{kind}\0{content_key}".encode()).hexdigest()
        return os.path.join(self.folder, kind, h[:2], f"{h}.safetensors")

    def get(self, kind, content_key, compute):
        """The cached tensor for (KIND, CONTENT_KEY), or COMPUTE() stored first. Always a fresh tensor."""
        path = self.path(kind, content_key)
        if os.path.exists(path):
            try:
                tensors, _ = read_safetensors(path, what="feature cache")
                self.hits += 1
                return tensors["value"]
            except (LoRAFileError, KeyError) as e:
                log.warning("feature cache: %s is damaged (%s); recomputing it", path, e)
        self.misses += 1
        import torch
        with torch.no_grad():  # encoders never train here
            value = compute().detach().float().cpu().contiguous()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_safetensors_atomic(path, {"value": value}, {"kind": kind, "key": content_key[:200]})
        return value.clone()


def fingerprint(*modules, sample=4):
    """A cheap fingerprint of some modules' weights: names, shapes and the bytes of a few tensors each
    (hashing every weight of a 14B model would take minutes)."""
    import torch
    h = hashlib.sha256()
    for module in modules:
        if module is None:
            h.update(b"none")
            continue
        params = list(module.state_dict().items()) if hasattr(module, "state_dict") else []
        h.update(type(module).__name__.encode())
        for name, t in params:
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        step = max(1, len(params) // sample)
        for name, t in params[::step]:
            flat = t.detach().reshape(-1)[:4096].float().cpu()
            h.update(flat.numpy().tobytes() if flat.dtype == torch.float32 else b"")
    return h.hexdigest()[:24]
