"""The StyleMotif model bundle: HumanML3D normalisation stats, MLD VAE + denoiser (the official
architecture, mld_vae.py / denoiser.py), style encoder, alignment head and style bank, saved as one
safetensors file with the config in its metadata.

Generation works in the normalised feature space and returns raw HumanML3D features:
    motion-guided stylization:  text + style -> DDIM with CFG and cross-norm -> VAE decode
    motion style transfer:      content motion + style (+ text) -> encode, noise to `strength`,
                                denoise with CFG and cross-norm -> decode
Text is MLD's text feature [B, 1, text_dim] (CLIP ViT-L/14 projected pooled embedding for the
released models); the unconditional branch is the empty prompt's feature.
"""
import dataclasses
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .alignment import AlignmentHead
from .denoiser import FUSE_AFTER, LatentDenoiser
from .humanml3d import FEATURE_DIM, Normalizer, check_features
from .mld_vae import MotionVAE, check_frames
from .sampling import GUIDANCE, PREDICTIONS, STEPS, ddim_sample
from .style_bank import StyleBank
from .style_encoder import StyleEncoder

FORMAT = "stylemotif/2"
LIMITS = {"latent_dim": 4096, "latent_tokens": 16, "layers": 63, "heads": 64, "ff_dim": 16384, "text_dim": 8192,
          "embed_dim": 8192, "frames": 498}


@dataclasses.dataclass
class StyleMotifConfig:
    """Defaults: the released MLD HumanML3D model (configs/config_mld_humanml3d.yaml + modules/)."""
    latent_dim: int = 256
    latent_tokens: int = 1
    layers: int = 9  # VAE encoder, VAE decoder and denoiser alike
    heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1
    text_dim: int = 768  # CLIP ViT-L/14 projected text embedding
    embed_dim: int = 768  # the frozen shared space the alignment head reads (CLIP ViT-L/14: text and image_embeds)
    frames: int = 60  # default motion length in feature frames (3 s at 20 fps)
    gamma: float = 0.6
    fuse_after: int = FUSE_AFTER
    prediction: str = "epsilon"

    @classmethod
    def from_json(cls, text, source="config"):
        """A config from JSON, refusing unknown fields, wrong types and sizes past LIMITS."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: the stylemotif_config metadata is not valid JSON ({e})") from None
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - set(fields):
            raise ValueError(f"{source}: unexpected config fields {sorted(set(data) - set(fields)) if isinstance(data, dict) else data!r}")
        for k, v in data.items():
            want = {int: int, float: (int, float), str: str}[fields[k]]
            if not isinstance(v, want) or isinstance(v, bool):
                raise ValueError(f"{source}: config field {k} = {v!r} has the wrong type")
        c = cls(**data)
        c.check(source)
        return c

    def check(self, source="config"):
        for k, limit in LIMITS.items():
            if not 1 <= getattr(self, k) <= limit:
                raise ValueError(f"{source}: config {k} = {getattr(self, k)} is outside 1..{limit}")
        if self.layers % 2 != 1 or self.latent_dim % self.heads or not 0 <= self.fuse_after < self.layers:
            raise ValueError(f"{source}: config needs odd layers, latent_dim divisible by heads and 0 <= fuse_after < layers "
                             f"(layers {self.layers}, latent_dim {self.latent_dim}, heads {self.heads}, fuse_after {self.fuse_after})")
        if self.prediction not in PREDICTIONS or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{source}: config prediction must be one of {PREDICTIONS} and dropout in [0, 1)")
        return self


class StyleMotif(nn.Module):
    def __init__(self, config: StyleMotifConfig = None):
        super().__init__()
        c = self.config = (config or StyleMotifConfig()).check()
        arch = (c.latent_dim, c.latent_tokens, c.layers, c.heads, c.ff_dim, c.dropout)
        self.vae = MotionVAE(*arch)
        self.denoiser = LatentDenoiser(c.latent_dim, c.latent_tokens, c.text_dim, c.layers, c.heads, c.ff_dim, c.dropout)
        self.style_encoder = StyleEncoder(*arch)
        self.align = AlignmentHead(c.embed_dim, c.latent_dim)
        self.register_buffer("mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("std", torch.ones(FEATURE_DIM))
        self.register_buffer("bank_vectors", torch.zeros(0, c.latent_dim))
        self.bank_labels = []

    @property
    def normalizer(self):
        return Normalizer(self.mean.cpu(), self.std.cpu())

    def set_normalizer(self, normalizer):
        self.mean.copy_(normalizer.mean)
        self.std.copy_(normalizer.std)

    @property
    def bank(self):
        return StyleBank(self.bank_vectors.cpu(), self.bank_labels)

    def set_bank(self, vectors, labels):
        self.bank_vectors = torch.as_tensor(vectors, dtype=torch.float32).reshape(len(labels), self.config.latent_dim).to(self.mean.device)
        self.bank_labels = list(labels)

    def normalize(self, features):
        return (features.to(self.mean.device) - self.mean) / self.std

    def denormalize(self, x):
        return x * self.std + self.mean

    @torch.no_grad()
    def encode_style(self, features, name="style motion"):
        """Style feature F_s [B, D] of raw motion features [F, 263] or [B, F, 263]."""
        x = check_features(features, name)
        x = x[None] if x.ndim == 2 else x
        return self.style_encoder(self.normalize(x))

    @torch.no_grad()
    def style_from_embedding(self, embedding, top_k=1, temperature=0.1):
        """(style vector [D], {label: weight}): project a frozen embedding, retrieve from the bank."""
        emb = torch.as_tensor(embedding, dtype=torch.float32).reshape(-1).to(self.mean.device)
        if not torch.isfinite(emb).all():
            raise ValueError("embedding: contains NaN/inf values")
        if not len(self.bank_labels):
            raise ValueError("model: has no style bank (train the alignment stage first)")
        return self.bank.retrieve(self.align(emb).cpu(), top_k, temperature)

    def _text(self, text, name):
        text = torch.as_tensor(text, dtype=torch.float32).to(self.mean.device)
        text = text[None] if text.ndim == 1 else text
        if not torch.isfinite(text).all():
            raise ValueError(f"{name}: contains NaN/inf values")
        try:
            return self.denoiser.check_text(text)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None

    def _style(self, style, batch):
        style = torch.as_tensor(style, dtype=torch.float32).to(self.mean.device)
        style = style.reshape(1, -1) if style.ndim == 1 else style
        if style.shape[-1] != self.config.latent_dim or not torch.isfinite(style).all():
            raise ValueError(f"style: expected finite style vectors of width {self.config.latent_dim}, got shape {tuple(style.shape)}")
        return style.expand(batch, -1)

    def _sample(self, text, null_text, style, gamma, fuse_after, **kw):
        text = self._text(text, "text")
        null_text = self._text(null_text, "negative (empty-prompt text)")
        style = None if style is None else self._style(style, text.shape[0])
        c = self.config
        return ddim_sample(self.denoiser, text, null_text, style=style, gamma=c.gamma if gamma is None else gamma,
                           fuse_after=c.fuse_after if fuse_after is None else fuse_after, prediction=c.prediction, **kw)

    @torch.no_grad()
    def generate(self, text, null_text, frames=None, style=None, gamma=None, fuse_after=None, steps=STEPS, seed=0,
                 guidance=GUIDANCE, lengths=None, progress=None):
        """Raw features [B, frames, 263] for text features [B, 1, text_dim] (null_text: the empty
        prompt's), optionally stylized; lengths (one per item, <= frames) zero each item's tail."""
        frames = check_frames(frames or self.config.frames)
        z = self._sample(text, null_text, style, gamma, fuse_after, steps=steps, seed=seed, guidance=guidance, progress=progress)
        return self.denormalize(self.vae.decode(z, frames, lengths))

    @torch.no_grad()
    def transfer(self, content, style, text, null_text, strength=0.7, gamma=None, fuse_after=None, steps=STEPS, seed=0,
                 guidance=GUIDANCE, progress=None):
        """Motion style transfer: raw features [B, F, 263] keeping `content`'s motion, in `style`;
        text (the content's description) and guidance act on the re-noised steps as in generation."""
        x = check_features(content, "content motion")
        x = x[None] if x.ndim == 2 else x
        _, mu, _ = self.vae.encode(self.normalize(x))
        z = self._sample(text, null_text, style, gamma, fuse_after, steps=steps, seed=seed, guidance=guidance,
                         init_latent=mu, strength=strength, progress=progress)
        return self.denormalize(self.vae.decode(z, x.shape[1]))

    def save(self, path, extra_metadata=None):
        """One safetensors file; config and bank labels in the metadata; atomic (temp + os.replace)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        meta = {"format": FORMAT, "stylemotif_config": json.dumps(dataclasses.asdict(self.config)),
                "style_bank_labels": json.dumps(self.bank_labels), **(extra_metadata or {})}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path, device="cpu"):
        """A fp32 model in eval mode. The config is bounded and every tensor's shape is checked against
        the architecture it describes (built on the meta device) before any real module is allocated."""
        name = os.path.basename(path)
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{name}: not a StyleMotif model of this version (metadata format {meta.get('format')!r}, "
                                 f"expected {FORMAT!r}); import MLD checkpoints with `python -m stylemotif.import_mld`")
            config = StyleMotifConfig.from_json(meta.get("stylemotif_config"), name)
            try:
                labels = json.loads(meta.get("style_bank_labels", "[]"))
            except ValueError:
                labels = None
            if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels) or len(labels) > 100000:
                raise ValueError(f"{name}: style_bank_labels metadata must be a JSON list of names")
            with torch.device("meta"):
                expected = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
            expected["bank_vectors"] = (len(labels), config.latent_dim)
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            if found != expected:
                diff = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))[:5]
                raise ValueError(f"{name}: tensors do not match the config in its metadata (first differences: "
                                 + ", ".join(f"{k} file {found.get(k)} vs config {expected.get(k)}" for k in diff) + ")")
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}
        for k, v in tensors.items():
            if not torch.isfinite(v).all():
                raise ValueError(f"{name}: tensor {k} contains NaN/inf values")
        model = cls(config)
        model.set_bank(tensors["bank_vectors"], labels)
        model.load_state_dict(tensors)
        return model.to(device).eval()
