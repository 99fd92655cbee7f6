"""Training a StyleMotif model stage by stage (each stage resumable, resume states `<stage>.resume`
in one folder):

  base (MLD, skipped for an imported checkpoint):  1. normalisation stats  2. VAE  3. text denoiser
  style fine-tune (paper Sec. 3.2-3.4, MLD frozen): 4. style encoder: a copy of the VAE fine-tuned as a
      VAE on style motion (0 steps: the VAE encoder as is)  5. stylization: style encoder only, through
      the frozen denoiser with cross-norm after block m  6. alignment head + style bank
`embed(list of str) -> [N, C]` is the frozen text space (CLIP ViT-L/14 text features for real
models, HashTextEncoder for the procedural toy); the empty prompt is the unconditional text.
"""
import os

import torch

from .datasets import load_100style, procedural_set
from .model import StyleMotif, StyleMotifConfig
from .procedural import STYLE_TEXTS
from .text_embedding import HashTextEncoder
from .training import (RESUME_EXT, fit_normalizer, pretrain_style_encoder, train_alignment, train_denoiser,
                       train_stylization, train_vae)

STYLE_STAGES = ("style_pretrain", "stylization", "alignment")
DEFAULT_STEPS = {"vae": 300, "denoiser": 2000, "style_pretrain": 0, "stylization": 1000, "alignment": 200}
MLD_LR = {"vae": 1e-4, "denoiser": 1e-4, "style_pretrain": 1e-4, "stylization": 1e-5, "alignment": 1e-2}  # MLD / paper
TOY_LR = {"vae": 1e-3, "denoiser": 1e-3, "style_pretrain": 1e-3, "stylization": 5e-3, "alignment": 1e-2}  # tiny widths
# The procedural toy: a small config of the MLD classes (z_0 prediction, MLD's PREDICT_EPSILON=False
# ablation, because an epsilon network this small is too inaccurate at high noise where text decides content).
TOY = StyleMotifConfig(latent_dim=64, layers=3, heads=4, ff_dim=128, dropout=0.0, text_dim=768, embed_dim=768, frames=40,
                       prediction="sample")


def _stage_tools(ckpt_dir, progress):
    def ck(stage):
        return os.path.join(ckpt_dir, stage + RESUME_EXT) if ckpt_dir else None

    def prog(stage):
        return None if progress is None else (lambda done, total: progress(stage, done, total))
    return ck, prog


def train_base(model, content_data, embed, steps, lr=None, seed=0, ckpt_dir=None, progress=None):
    """MLD itself: normalisation, VAE and text denoiser on content motion."""
    lr = {**MLD_LR, **(lr or {})}
    ck, prog = _stage_tools(ckpt_dir, progress)
    fit_normalizer(model, content_data)
    train_vae(model, content_data, steps["vae"], lr=lr["vae"], seed=seed, ckpt_path=ck("vae"), progress=prog("vae"))
    train_denoiser(model, content_data, steps["denoiser"], embed, lr=lr["denoiser"], seed=seed + 1, ckpt_path=ck("denoiser"),
                   progress=prog("denoiser"))
    return model


def finetune_style(model, style_data, texts_by_style, embed, steps, lr=None, seed=0, ckpt_dir=None, progress=None,
                   style_embed=None, image_embeds=None):
    """StyleMotif's style branch on a (trained or imported) MLD; only the style encoder and the
    alignment head learn. style_embed: the frozen space of the alignment head (default: embed);
    image_embeds: {style label: [n, embed_dim]} style-image embeddings the head also learns from."""
    lr = {**MLD_LR, **(lr or {})}
    ck, prog = _stage_tools(ckpt_dir, progress)
    if steps.get("style_pretrain", 0) > 0:
        pretrain_style_encoder(model, style_data, steps["style_pretrain"], lr=lr["style_pretrain"], seed=seed + 2,
                               ckpt_path=ck("style_pretrain"), progress=prog("style_pretrain"))
    else:
        model.style_encoder.init_from_vae(model.vae)
    train_stylization(model, style_data, steps["stylization"], embed, lr=lr["stylization"], seed=seed + 3,
                      ckpt_path=ck("stylization"), progress=prog("stylization"))
    train_alignment(model, style_data, texts_by_style, style_embed or embed, steps["alignment"], lr=lr["alignment"],
                    seed=seed + 4, ckpt_path=ck("alignment"), progress=prog("alignment"), image_embeds=image_embeds)
    return model.eval()


def train_procedural(n_clips=500, config=None, steps=None, seed=0, ckpt_dir=None, progress=None, embed=None):
    """(model, data, embed): the toy trained from scratch on n_clips procedural clips (content and style
    set alike) in the text space `embed` (default: the hash text space of width config.text_dim)."""
    config = config or TOY
    if config.embed_dim != config.text_dim:
        raise ValueError("procedural training aligns the text embedding: embed_dim must equal text_dim")
    steps = {**DEFAULT_STEPS, **(steps or {})}
    data = procedural_set(n_clips, frames=config.frames, seed=seed)
    embed = embed or HashTextEncoder(config.text_dim)
    torch.manual_seed(seed)
    model = StyleMotif(config)
    train_base(model, data, embed, steps, TOY_LR, seed, ckpt_dir, progress)
    finetune_style(model, data, STYLE_TEXTS, embed, steps, TOY_LR, seed, ckpt_dir, progress)
    return model, data, embed


def style_descriptions(labels):
    """Descriptions of each style label for the alignment stage (100STYLE names its styles only)."""
    return {lab: STYLE_TEXTS.get(lab.lower(), (lab.lower(), f"in a {lab.lower()} style", f"moving {lab.lower()}"))
            for lab in labels}


def style_set(source, frames, clips=500, seed=0):
    """(motion set, descriptions): `source` "procedural" (clips procedural clips) or a folder in 100STYLE
    layout (datasets.py), cut into windows of `frames` frames."""
    if source == "procedural":
        return procedural_set(clips, frames=frames, seed=seed), STYLE_TEXTS
    data = load_100style(source, "train", window=frames)
    labels = sorted({s for s in data.style if s})
    if len(labels) < 2:
        raise ValueError(f"{source}: expected at least 2 labelled styles (Style_name_dict.txt), found {labels}")
    keep = [i for i, s in enumerate(data.style) if s]
    return data.subset(keep), style_descriptions(labels)
