"""Training loops: MLD VAE, latent denoiser, style encoder (VAE pretraining, then stylization with
the MLD frozen), alignment head and the evaluation classifier. Every loop is resumable: a checkpoint
(modules, optimizer, sampling RNG, step, losses) is written atomically every `ckpt_every` steps, and
a run started with the same checkpoint path continues where it stopped, with the same result as an
uninterrupted run.
"""
import copy
import os

import torch

from .alignment import symmetric_contrastive_loss
from .humanml3d import Normalizer
from .sampling import TRAIN_TIMESTEPS, make_scheduler


def save_checkpoint(path, state):
    """torch.save to a temp file in the same folder, then os.replace: a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def run_loop(modules, loss_fn, steps, lr=1e-3, seed=0, ckpt_path=None, ckpt_every=100, progress=None):
    """Minimise loss_fn(generator) over the parameters of `modules` (a dict name -> nn.Module).

    Returns the list of losses of all steps so far (including those before a resume).
    """
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    start, losses = 0, []
    if ckpt_path and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, weights_only=False)
        for name, m in modules.items():
            m.load_state_dict(state["modules"][name])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        start, losses = state["step"], list(state["losses"])
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
            save_checkpoint(ckpt_path, {"step": done, "losses": losses, "rng": gen.get_state(), "optimizer": opt.state_dict(),
                                        "modules": {n: m.state_dict() for n, m in modules.items()}})
        if progress is not None:
            progress(done, steps)
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


def train_vae(model, data, steps, batch=32, lr=1e-3, kl_weight=1e-4, seed=0, ckpt_path=None, progress=None, vae=None):
    """MLD VAE on normalised features (stage 1 of the style encoder pretraining uses the same loss)."""
    vae = vae or model.vae
    _trainable(vae)
    x_all = model.normalize(data.features)

    def loss_fn(gen):
        return vae.loss(x_all[_batch(len(data), batch, gen)], kl_weight, gen)
    return run_loop({"vae": vae}, loss_fn, steps, lr, seed, ckpt_path, progress=progress)


def _captions(model, data, idx, gen, drop=0.0):
    texts = [data.captions[i][int(torch.randint(0, len(data.captions[i]), (1,), generator=gen))] for i in idx.tolist()]
    emb = model.embed_text(texts)
    if drop > 0:
        keep = (torch.rand(len(texts), generator=gen) >= drop).float()[:, None].to(emb)
        emb = emb * keep  # the null (zero) text for classifier-free guidance
    return emb


def _diffusion_loss(model, z0, text, gen, style=None, gamma=0.6, fuse_after=1):
    """||z0 - f_theta(sqrt(a_t) z0 + sqrt(1 - a_t) eps, t, text[, style])||^2 (z_0 prediction)."""
    sched = make_scheduler()
    t = torch.randint(0, TRAIN_TIMESTEPS, (z0.shape[0],), generator=gen)
    noise = torch.randn(z0.shape, generator=gen).to(z0)
    z_t = sched.add_noise(z0, noise, t)
    return ((model.denoiser(z_t, t.to(z0.device), text, style, gamma, fuse_after) - z0) ** 2).mean()


def train_denoiser(model, data, steps, batch=32, lr=1e-3, text_drop=0.1, seed=0, ckpt_path=None, progress=None):
    """Text-conditioned latent diffusion on the frozen VAE's posterior means."""
    _frozen(model.vae)
    _trainable(model.denoiser)
    with torch.no_grad():
        z_all = model.vae.encode(model.normalize(data.features))[1]

    def loss_fn(gen):
        idx = _batch(len(data), batch, gen)
        return _diffusion_loss(model, z_all[idx], _captions(model, data, idx, gen, text_drop), gen)
    return run_loop({"denoiser": model.denoiser}, loss_fn, steps, lr, seed, ckpt_path, progress=progress)


def pretrain_style_encoder(model, style_data, steps, batch=32, lr=1e-3, seed=0, ckpt_path=None, progress=None):
    """Paper Sec. 3.2: start from the content-pretrained MLD VAE, fine-tune a copy as a VAE on style
    motion, keep its encoder as the style encoder (the decoder copy is discarded)."""
    vae = copy.deepcopy(model.vae)
    losses = train_vae(model, style_data, steps, batch, lr, seed=seed, ckpt_path=ckpt_path, progress=progress, vae=vae)
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


def train_stylization(model, style_data, steps, batch=32, lr=5e-3, gamma=None, fuse_after=None, text_drop=0.1, seed=0,
                      ckpt_path=None, progress=None):
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

    def loss_fn(gen):
        idx = _batch(len(style_data), batch, gen)
        style = model.style_encoder(x_all[_partners(pools, idx, gen)])
        return _diffusion_loss(model, z_all[idx], _captions(model, style_data, idx, gen, text_drop), gen, style, gamma, fuse_after)
    return run_loop({"style_encoder": model.style_encoder}, loss_fn, steps, lr, seed, ckpt_path, progress=progress)


def style_bank_from(model, data):
    """Mean style feature per style label: the bank that retrieval and blending read."""
    feats = model.encode_style(data.features)
    labels = sorted(set(data.style))
    vectors = torch.stack([feats[[i for i, s in enumerate(data.style) if s == lab]].mean(0) for lab in labels])
    return vectors, labels


def train_alignment(model, style_data, texts_by_style, embed, steps, lr=1e-2, tau=0.07, seed=0, ckpt_path=None, progress=None):
    """Symmetric contrastive alignment of model.align: embed(list of str) -> [N, embed_dim] is the
    frozen embedding; each step pairs one description and one clip of every style. Also fills the bank."""
    _frozen(model.style_encoder)
    _trainable(model.align)
    labels = sorted(texts_by_style)
    feats = model.encode_style(style_data.features)
    clips = {lab: [i for i, s in enumerate(style_data.style) if s == lab] for lab in labels}
    missing = [lab for lab in labels if not clips[lab]]
    if missing:
        raise ValueError(f"alignment: no style motion for the described styles {missing}")
    text_emb = {lab: embed(list(texts_by_style[lab])).to(model.device) for lab in labels}

    def loss_fn(gen):
        t = torch.stack([text_emb[lab][torch.randint(0, len(text_emb[lab]), (1,), generator=gen)][0] for lab in labels])
        s = torch.stack([feats[clips[lab][int(torch.randint(0, len(clips[lab]), (1,), generator=gen))]] for lab in labels])
        return symmetric_contrastive_loss(model.align(t), s, tau)
    losses = run_loop({"align": model.align}, loss_fn, steps, lr, seed, ckpt_path, progress=progress)
    model.set_bank(*style_bank_from(model, style_data))
    return losses


def train_classifier(classifier, normalizer, data, content_names, style_names, steps, batch=64, lr=2e-3, seed=0,
                     ckpt_path=None, progress=None):
    x_all = normalizer.normalize(data.features)
    c_all = torch.tensor([content_names.index(c) for c in data.content])
    s_all = torch.tensor([style_names.index(s) for s in data.style])

    def loss_fn(gen):
        idx = _batch(len(data), batch, gen)
        c, s = classifier(x_all[idx])
        return torch.nn.functional.cross_entropy(c, c_all[idx]) + torch.nn.functional.cross_entropy(s, s_all[idx])
    return run_loop({"classifier": classifier}, loss_fn, steps, lr, seed, ckpt_path, progress=progress)
