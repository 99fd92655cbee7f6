"""End-to-end training of a StyleMotif model on a motion set, stage by stage (each resumable):

  1. normalisation stats                     4. style encoder: VAE fine-tune on style motion
  2. MLD VAE on content motion               5. stylization: style encoder only, MLD frozen
  3. text-conditioned latent denoiser        6. alignment head + style bank on style descriptions
With the procedural generator standing in for HumanML3D (content) and 100STYLE (style).
"""
import os

import torch

from .datasets import procedural_set
from .model import StyleMotif, StyleMotifConfig
from .procedural import STYLE_TEXTS
from .training import (fit_normalizer, pretrain_style_encoder, train_alignment, train_denoiser, train_stylization,
                       train_vae)

DEFAULT_STEPS = {"vae": 300, "denoiser": 2000, "style_pretrain": 0, "stylization": 1000, "alignment": 200}


def train_model(content_data, style_data, texts_by_style, config=None, steps=None, seed=0, ckpt_dir=None, progress=None):
    """A trained StyleMotif. steps: per-stage step counts (see DEFAULT_STEPS; style_pretrain 0 starts
    the style encoder from the content VAE encoder). progress(stage, done, total) is optional."""
    steps = {**DEFAULT_STEPS, **(steps or {})}
    torch.manual_seed(seed)
    model = StyleMotif(config or StyleMotifConfig())

    def ck(stage):
        return os.path.join(ckpt_dir, f"{stage}.pt") if ckpt_dir else None

    def prog(stage):
        return None if progress is None else (lambda done, total: progress(stage, done, total))
    fit_normalizer(model, content_data)
    train_vae(model, content_data, steps["vae"], seed=seed, ckpt_path=ck("vae"), progress=prog("vae"))
    train_denoiser(model, content_data, steps["denoiser"], seed=seed + 1, ckpt_path=ck("denoiser"), progress=prog("denoiser"))
    if steps["style_pretrain"] > 0:
        pretrain_style_encoder(model, style_data, steps["style_pretrain"], seed=seed + 2, ckpt_path=ck("style_pretrain"),
                               progress=prog("style_pretrain"))
    else:
        model.style_encoder.init_from_vae(model.vae)
    train_stylization(model, style_data, steps["stylization"], seed=seed + 3, ckpt_path=ck("stylization"), progress=prog("stylization"))
    train_alignment(model, style_data, texts_by_style, model.text_encoder, steps["alignment"], seed=seed + 4,
                    ckpt_path=ck("alignment"), progress=prog("alignment"))
    return model.eval()


def train_procedural(n_clips=500, config=None, steps=None, seed=0, ckpt_dir=None, progress=None):
    """(model, data): a model trained on n_clips procedural clips (content and style set alike)."""
    config = config or StyleMotifConfig()
    data = procedural_set(n_clips, frames=config.frames, seed=seed)
    if config.embed_dim != config.text_dim:
        raise ValueError("procedural training aligns the built-in text embedding: embed_dim must equal text_dim")
    return train_model(data, data, STYLE_TEXTS, config, steps, seed, ckpt_dir, progress), data
