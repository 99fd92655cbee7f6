"""The StyleMotif model bundle: normalisation stats, MLD VAE + denoiser, style encoder, alignment
head and style bank, saved as one safetensors file with the config in its metadata.

Generation works in the normalised feature space and returns raw HumanML3D features:
    motion-guided stylization:  text + style motion  -> DDIM with cross-norm -> VAE decode
    motion style transfer:      content motion + style motion -> encode, noise to `strength`,
                                denoise with cross-norm -> decode
"""
import dataclasses
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .alignment import AlignmentHead
from .denoiser import LatentDenoiser
from .humanml3d import FEATURE_DIM, Normalizer, check_features
from .mld_vae import MotionVAE
from .sampling import ddim_sample
from .style_bank import StyleBank
from .style_encoder import StyleEncoder
from .text_embedding import HashTextEncoder

FORMAT = "stylemotif/1"


@dataclasses.dataclass
class StyleMotifConfig:
    latent_dim: int = 64
    latent_tokens: int = 1
    vae_layers: int = 2
    denoiser_depth: int = 4
    heads: int = 4
    ff_dim: int = 128
    text_dim: int = 64  # width of the content text embedding the denoiser reads
    text_seed: int = 0  # seed of the built-in hash text embedding
    embed_dim: int = 64  # width of the frozen embedding space the alignment head reads
    frames: int = 40  # default motion length in feature frames (2 s at 20 fps)
    gamma: float = 0.6
    fuse_after: int = 0  # block m, 0-based: fuse after the first block

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class StyleMotif(nn.Module):
    def __init__(self, config: StyleMotifConfig = None):
        super().__init__()
        c = self.config = config or StyleMotifConfig()
        self.vae = MotionVAE(c.latent_dim, c.latent_tokens, c.vae_layers, c.heads, c.ff_dim)
        self.denoiser = LatentDenoiser(c.latent_dim, c.latent_tokens, c.text_dim, c.denoiser_depth, c.heads, c.ff_dim)
        self.style_encoder = StyleEncoder(c.latent_dim, c.latent_tokens, c.vae_layers, c.heads, c.ff_dim)
        self.align = AlignmentHead(c.embed_dim, c.latent_dim)
        self.text_encoder = HashTextEncoder(c.text_dim, c.text_seed)
        self.register_buffer("mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("std", torch.ones(FEATURE_DIM))
        self.register_buffer("bank_vectors", torch.zeros(0, c.latent_dim))
        self.bank_labels = []

    @property
    def device(self):
        return self.mean.device

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
        self.bank_vectors = torch.as_tensor(vectors, dtype=torch.float32).reshape(len(labels), self.config.latent_dim).to(self.device)
        self.bank_labels = list(labels)

    def normalize(self, features):
        return (features.to(self.device) - self.mean) / self.std

    def denormalize(self, x):
        return x * self.std + self.mean

    def embed_text(self, texts):
        return self.text_encoder(texts).to(self.device)

    @torch.no_grad()
    def encode_style(self, features, name="style motion"):
        """Style feature F_s [B, D] of raw motion features [F, 263] or [B, F, 263]."""
        x = check_features(features, name)
        x = x[None] if x.ndim == 2 else x
        return self.style_encoder(self.normalize(x))

    @torch.no_grad()
    def style_from_embedding(self, embedding, top_k=1, temperature=0.1):
        """(style vector [D], {label: weight}): project a frozen embedding, retrieve from the bank."""
        emb = torch.as_tensor(embedding, dtype=torch.float32).reshape(-1).to(self.device)
        if not torch.isfinite(emb).all():
            raise ValueError("embedding: contains NaN/inf values")
        return self.bank.retrieve(self.align(emb).cpu(), top_k, temperature)

    def _check_style(self, style, batch):
        style = torch.as_tensor(style, dtype=torch.float32).to(self.device)
        style = style.reshape(1, -1) if style.ndim == 1 else style
        if style.shape[-1] != self.config.latent_dim or not torch.isfinite(style).all():
            raise ValueError(f"style: expected finite style vectors of width {self.config.latent_dim}, got shape {tuple(style.shape)}")
        return style.expand(batch, -1)

    @torch.no_grad()
    def generate(self, text_emb, frames=None, style=None, gamma=None, fuse_after=None, steps=20, seed=0,
                 guidance=2.5, progress=None):
        """Raw features [B, frames, 263] for text embeddings [B, text_dim], optionally stylized."""
        c = self.config
        text_emb = torch.as_tensor(text_emb, dtype=torch.float32).to(self.device)
        text_emb = text_emb[None] if text_emb.ndim == 1 else text_emb
        if text_emb.shape[-1] != c.text_dim:
            raise ValueError(f"text embedding: expected width {c.text_dim} (this model's text space), got {text_emb.shape[-1]}")
        style = None if style is None else self._check_style(style, text_emb.shape[0])
        z = ddim_sample(self.denoiser, text_emb, steps, seed, guidance, style, c.gamma if gamma is None else gamma,
                        c.fuse_after if fuse_after is None else fuse_after, progress=progress)
        return self.denormalize(self.vae.decode(z, frames or c.frames))

    @torch.no_grad()
    def transfer(self, content, style, strength=0.7, text_emb=None, gamma=None, fuse_after=None, steps=20, seed=0,
                 guidance=1.0, progress=None):
        """Motion style transfer: raw features [B, F, 263] keeping `content`'s motion, in `style`."""
        c = self.config
        x = check_features(content, "content motion")
        x = x[None] if x.ndim == 2 else x
        _, mu, _ = self.vae.encode(self.normalize(x))
        text_emb = torch.zeros(x.shape[0], c.text_dim) if text_emb is None else torch.as_tensor(text_emb, dtype=torch.float32).reshape(x.shape[0], -1)
        z = ddim_sample(self.denoiser, text_emb.to(self.device), steps, seed, guidance, self._check_style(style, x.shape[0]),
                        c.gamma if gamma is None else gamma, c.fuse_after if fuse_after is None else fuse_after,
                        init_latent=mu, strength=strength, progress=progress)
        return self.denormalize(self.vae.decode(z, x.shape[1]))

    def save(self, path):
        """One safetensors file; config and bank labels in the metadata; atomic (temp + os.replace)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        meta = {"format": FORMAT, "stylemotif_config": json.dumps(dataclasses.asdict(self.config)),
                "style_bank_labels": json.dumps(self.bank_labels)}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path, device="cpu"):
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a StyleMotif model (metadata format {meta.get('format')!r}, expected {FORMAT!r})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        model = cls(StyleMotifConfig.from_json(meta["stylemotif_config"]))
        model.set_bank(tensors["bank_vectors"], json.loads(meta["style_bank_labels"]))
        model.load_state_dict(tensors)
        return model.to(device).eval()
