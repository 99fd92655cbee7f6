"""Training loops: MLD VAE, latent denoiser, style encoder (VAE pretraining, then stylization with
the MLD frozen), alignment head and the evaluation classifier. Every loop is resumable: a resume
state (module tensors, AdamW moments, the sampling RNG, step, losses; safetensors + JSON metadata,
never pickle) is written atomically every `ckpt_every` steps, and a run started with the same path
and the same job continues where it stopped, with the same result as an uninterrupted run. A state
written by a different job (data, seed, lr, step count, model config) is refused, naming the setting.
"""
import copy
import dataclasses
import hashlib
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .alignment import symmetric_contrastive_loss
from .humanml3d import Normalizer
from .sampling import TRAIN_TIMESTEPS, make_scheduler

RESUME_EXT = ".resume"  # resume states: safetensors content, an extension no model folder lists


class ResumeMismatch(ValueError):
    """A resume state that belongs to another job."""


def fingerprint(data):
    """sha256 (16 hex) of a motion set: features, captions and labels."""
    h = hashlib.sha256(data.features.detach().cpu().float().contiguous().numpy().tobytes())
    h.update(json.dumps([data.captions, data.content, data.style]).encode())
    return h.hexdigest()[:16]


def save_resume(path, modules, opt, gen, step, losses, job):
    """Write the state with a temp file in the same folder, then os.replace: a reader never sees half a file."""
    tensors = {f"module.{n}.{k}": v.detach().cpu().contiguous() for n, m in modules.items() for k, v in m.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        tensors.update({f"adam.{i}.{k}": torch.as_tensor(v).detach().cpu().contiguous() for k, v in st.items()})
    tensors["rng"] = gen.get_state()
    tensors["torch_rng"] = torch.get_rng_state()  # dropout draws from torch's default generator
    if torch.cuda.is_available():
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    save_file(tensors, tmp, metadata={"format": "stylemotif-resume/1", "step": str(step), "losses": json.dumps(losses),
                                      "job": json.dumps(job, sort_keys=True)})
    os.replace(tmp, path)


def load_resume(path, modules, opt, gen, job):
    """(step, losses) after restoring modules, AdamW state and RNG from `path`; refuses another job's state."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != "stylemotif-resume/1":
            raise ResumeMismatch(f"{os.path.basename(path)}: not a StyleMotif resume state")
        theirs = json.loads(meta["job"])
        for key in sorted(set(job) | set(theirs)):
            if theirs.get(key) != job.get(key):
                raise ResumeMismatch(f"resume: {os.path.basename(path)} belongs to another job: {key} was {theirs.get(key)!r}, "
                                     f"now {job.get(key)!r} (use the same setting, a new name, or delete the resume state)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for n, m in modules.items():
        m.load_state_dict({k[len(f"module.{n}."):]: v for k, v in tensors.items() if k.startswith(f"module.{n}.")})
    state = {}
    for k, v in tensors.items():
        if k.startswith("adam."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    gen.set_state(tensors["rng"])
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda_rng"])
    return int(meta["step"]), json.loads(meta["losses"])


def run_loop(modules, loss_fn, steps, lr=1e-3, seed=0, ckpt_path=None, ckpt_every=100, progress=None, job=None):
    """Minimise loss_fn(generator) over the parameters of `modules` (a dict name -> nn.Module).

    job: what identifies the run beyond (steps, lr, seed), e.g. data fingerprint and config; a resume
    state of another job is refused. progress(done, steps) runs after each step and may raise to stop (the state is saved first).
    Returns the list of losses of all steps so far (including those before a resume).
    """
    job = {**(job or {}), "steps": steps, "lr": lr, "seed": seed, "modules": sorted(modules)}
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    start, losses = 0, []
    if ckpt_path and os.path.exists(ckpt_path):
        start, losses = load_resume(ckpt_path, modules, opt, gen, job)
    for m in modules.values():
        m.train()
    for step in range(start, steps):
        loss = loss_fn(gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        done = step + 1
        if ckpt_path and (done % ckpt_every == 0 or done == steps):
            save_resume(ckpt_path, modules, opt, gen, done, losses, job)
        if progress is not None:
            try:
                progress(done, steps)
            except BaseException:  # interrupted: keep the work done so far
                if ckpt_path and done % ckpt_every and done != steps:
                    save_resume(ckpt_path, modules, opt, gen, done, losses, job)
                raise
    for m in modules.values():
        m.eval()
    return losses


def _batch(n, size, gen):
    return torch.randint(0, n, (size,), generator=gen)


def _frozen(*modules):
    for m in modules:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)


def _trainable(*modules):
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(True)


def fit_normalizer(model, data):
    model.set_normalizer(Normalizer.fit(list(data.features)))


def job_of(model, data, stage):
    return {"stage": stage, "data": fingerprint(data), "config": json.dumps(dataclasses.asdict(model.config), sort_keys=True)}


def train_vae(model, data, steps, batch=32, lr=1e-4, kl_weight=1e-4, seed=0, ckpt_path=None, progress=None, vae=None,
              stage="vae"):
    """MLD's VAE stage on normalised features: reconstruction + 1e-4 KL (LAMBDA_KL), AdamW 1e-4."""
    vae = vae or model.vae
    _trainable(vae)
    x_all = model.normalize(data.features)

    def loss_fn(gen):
        return vae.loss(x_all[_batch(len(data), batch, gen)], kl_weight, gen)
    return run_loop({"vae": vae}, loss_fn, steps, lr, seed, ckpt_path, progress=progress, job=job_of(model, data, stage))


class TextFeatures:
    """Frozen text features for a motion set's captions: embed(list of str) -> [N, C], computed once
    per distinct caption; the empty prompt "" is the unconditional text (MLD's classifier-free drop)."""

    def __init__(self, embed, data):
        texts = sorted({t for caps in data.captions for t in caps} | {""})
        feats = torch.as_tensor(embed(texts), dtype=torch.float32).reshape(len(texts), -1)
        if not torch.isfinite(feats).all():
            raise ValueError("text features: the text encoder returned NaN/inf")
        self.index = {t: i for i, t in enumerate(texts)}
        self.feats = feats
        self.captions = data.captions

    def batch(self, idx, gen, drop=0.0):
        """[B, 1, C] features of one random caption per clip; a fraction `drop` replaced by the empty prompt's."""
        rows = [self.index[self.captions[i][int(torch.randint(0, len(self.captions[i]), (1,), generator=gen))]]
                for i in idx.tolist()]
        if drop > 0:
            keep = torch.rand(len(rows), generator=gen) >= drop
            rows = [r if k else self.index[""] for r, k in zip(rows, keep.tolist())]
        return self.feats[rows][:, None]


def _diffusion_loss(model, z0, text, gen, style=None, gamma=0.6, fuse_after=0):
    """MLD's diffusion loss: ||target - f(sqrt(a_t) z0 + sqrt(1 - a_t) eps, t, text[, style])||^2,
    target eps (prediction epsilon) or z0 (prediction sample)."""
    sched = make_scheduler(model.config.prediction)
    t = torch.randint(0, TRAIN_TIMESTEPS, (z0.shape[0],), generator=gen)
    noise = torch.randn(z0.shape, generator=gen).to(z0)
    z_t = sched.add_noise(z0, noise, t)
    target = noise if model.config.prediction == "epsilon" else z0
    return ((model.denoiser(z_t, t.to(z0.device), text.to(z0), style, gamma, fuse_after) - target) ** 2).mean()


def train_denoiser(model, data, steps, embed, batch=32, lr=1e-4, text_drop=0.1, seed=0, ckpt_path=None, progress=None):
    """Text-conditioned latent diffusion on the frozen VAE's posterior means (MLD's diffusion stage:
    captions dropped to the empty prompt with probability guidance_uncondp 0.1)."""
    _frozen(model.vae)
    _trainable(model.denoiser)
    with torch.no_grad():
        z_all = model.vae.encode(model.normalize(data.features))[1]
    text = TextFeatures(embed, data)

    def loss_fn(gen):
        idx = _batch(len(data), batch, gen)
        return _diffusion_loss(model, z_all[idx], text.batch(idx, gen, text_drop), gen)
    return run_loop({"denoiser": model.denoiser}, loss_fn, steps, lr, seed, ckpt_path, progress=progress,
                    job=job_of(model, data, "denoiser"))


def pretrain_style_encoder(model, style_data, steps, batch=32, lr=1e-4, seed=0, ckpt_path=None, progress=None):
    """Paper Sec. 3.2: start from the content-pretrained MLD VAE, fine-tune a copy as a VAE on style
    motion, keep its encoder as the style encoder (the decoder copy is discarded)."""
    vae = copy.deepcopy(model.vae)
    losses = train_vae(model, style_data, steps, batch, lr, seed=seed, ckpt_path=ckpt_path, progress=progress, vae=vae,
                       stage="style_pretrain")
    model.style_encoder.init_from_vae(vae)
    return losses


def _style_pools(labels):
    """For each clip, the indices of all clips with the same style label."""
    by_label = {}
    for i, s in enumerate(labels):
        by_label.setdefault(s, []).append(i)
    return [torch.tensor(by_label[s]) for s in labels]


def _partners(pools, idx, gen):
    """A random clip of the same style for each index (the reference the style is read from)."""
    return torch.stack([pools[i][torch.randint(0, len(pools[i]), (1,), generator=gen)][0] for i in idx.tolist()])


def train_stylization(model, style_data, steps, embed, batch=32, lr=1e-5, gamma=None, fuse_after=None, text_drop=0.1,
                      seed=0, ckpt_path=None, progress=None):
    """Only the style encoder learns (MLD frozen): diffusion loss on a style clip's latent, with the
    style feature of another clip of the same style fused by cross-norm after block m."""
    gamma = model.config.gamma if gamma is None else gamma
    fuse_after = model.config.fuse_after if fuse_after is None else fuse_after
    _frozen(model.vae, model.denoiser)
    _trainable(model.style_encoder)
    x_all = model.normalize(style_data.features)
    with torch.no_grad():
        z_all = model.vae.encode(x_all)[1]

    pools = _style_pools(style_data.style)
    text = TextFeatures(embed, style_data)

    def loss_fn(gen):
        idx = _batch(len(style_data), batch, gen)
        style = model.style_encoder(x_all[_partners(pools, idx, gen)])
        return _diffusion_loss(model, z_all[idx], text.batch(idx, gen, text_drop), gen, style, gamma, fuse_after)
    job = {**job_of(model, style_data, "stylization"), "gamma": gamma, "fuse_after": fuse_after}
    return run_loop({"style_encoder": model.style_encoder}, loss_fn, steps, lr, seed, ckpt_path, progress=progress, job=job)


def style_bank_from(model, data):
    """Mean style feature per style label: the bank that retrieval and blending read."""
    feats = model.encode_style(data.features)
    labels = sorted(set(data.style))
    vectors = torch.stack([feats[[i for i, s in enumerate(data.style) if s == lab]].mean(0) for lab in labels])
    return vectors, labels


def train_alignment(model, style_data, texts_by_style, embed, steps, lr=1e-2, tau=0.07, seed=0, ckpt_path=None, progress=None,
                    image_embeds=None):
    """Symmetric contrastive alignment of model.align: embed(list of str) -> [N, embed_dim] is the
    frozen embedding; each step pairs one description and one clip of every style. Also fills the bank.

    image_embeds: optional {style label: [n, embed_dim]} frozen image embeddings of the same space (CLIP
    Vision Encode's image_embeds of style images); each step then adds the image term, the same loss on
    one image per style against the same clips, and the two terms are averaged, so one head serves
    text and image queries. texts_by_style may then be empty (an image-only head)."""
    _frozen(model.style_encoder)
    _trainable(model.align)
    device = model.mean.device
    anchors = [{lab: torch.as_tensor(embed(list(texts)), dtype=torch.float32).to(device) for lab, texts in texts_by_style.items()}]
    if image_embeds:
        anchors.append({lab: _embeddings(e, model.config.embed_dim, f"image_embeds[{lab!r}]").to(device)
                        for lab, e in image_embeds.items()})
    anchors = [a for a in anchors if a]
    labels = sorted({lab for a in anchors for lab in a})
    if not labels:
        raise ValueError("alignment: no style descriptions or image embeddings given")
    feats = model.encode_style(style_data.features)
    clips = {lab: [i for i, s in enumerate(style_data.style) if s == lab] for lab in labels}
    missing = [lab for lab in labels if not clips[lab]]
    if missing:
        raise ValueError(f"alignment: no style motion for the described styles {missing}")

    def loss_fn(gen):
        picks = [[(labels.index(lab), a[lab][torch.randint(0, len(a[lab]), (1,), generator=gen)][0]) for lab in labels if lab in a]
                 for a in anchors]
        s = torch.stack([feats[clips[lab][int(torch.randint(0, len(clips[lab]), (1,), generator=gen))]] for lab in labels])
        terms = [symmetric_contrastive_loss(model.align(torch.stack([e for _, e in p])), s[[i for i, _ in p]], tau) for p in picks]
        return sum(terms) / len(terms)
    job = job_of(model, style_data, "alignment")
    if image_embeds:
        job["image_embeds"] = hashlib.sha256(b"".join(anchors[-1][lab].cpu().contiguous().numpy().tobytes() + lab.encode()
                                                      for lab in sorted(anchors[-1]))).hexdigest()[:16]
    losses = run_loop({"align": model.align}, loss_fn, steps, lr, seed, ckpt_path, progress=progress, job=job)
    model.set_bank(*style_bank_from(model, style_data))
    return losses


def _embeddings(e, width, name):
    """A finite [n >= 1, width] float tensor, or ValueError naming `name`."""
    e = torch.as_tensor(e, dtype=torch.float32)
    e = e[None] if e.ndim == 1 else e
    if e.ndim != 2 or not len(e) or e.shape[1] != width or not torch.isfinite(e).all():
        raise ValueError(f"{name}: expected finite embeddings [n, {width}] (the alignment head's space), got shape {tuple(e.shape)}")
    return e


def train_classifier(classifier, normalizer, data, content_names, style_names, steps, batch=64, lr=2e-3, seed=0,
                     ckpt_path=None, progress=None):
    x_all = normalizer.normalize(data.features)
    c_all = torch.tensor([content_names.index(c) for c in data.content])
    s_all = torch.tensor([style_names.index(s) for s in data.style])

    def loss_fn(gen):
        idx = _batch(len(data), batch, gen)
        c, s = classifier(x_all[idx])
        return torch.nn.functional.cross_entropy(c, c_all[idx]) + torch.nn.functional.cross_entropy(s, s_all[idx])
    return run_loop({"classifier": classifier}, loss_fn, steps, lr, seed, ckpt_path, progress=progress,
                    job={"stage": "classifier", "data": fingerprint(data)})
