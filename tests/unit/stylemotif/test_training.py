import math
import os

import pytest
import torch
from safetensors import safe_open

from stylemotif.alignment import symmetric_contrastive_loss
from stylemotif.datasets import procedural_set
from stylemotif.model import StyleMotif, StyleMotifConfig
from stylemotif.procedural import STYLE_TEXTS
from stylemotif.text_embedding import HashTextEncoder
from stylemotif.training import ResumeMismatch, fit_normalizer, train_alignment, train_denoiser, train_stylization, train_vae

TINY = StyleMotifConfig(latent_dim=32, layers=3, heads=2, ff_dim=64, text_dim=16, embed_dim=16, frames=20, prediction="sample")
EMBED = HashTextEncoder(16)


@pytest.fixture(scope="module")
def data():
    return procedural_set(60, frames=20, seed=0)


def fresh(data):
    torch.manual_seed(0)
    m = StyleMotif(TINY)
    fit_normalizer(m, data)
    return m


def test_contrastive_loss_matches_the_formula():
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # normalised: (1,0), (.707,.707)
    tau = 0.5
    sim = torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]]) / tau
    rows = -(sim.diag() - sim.logsumexp(1))
    cols = -(sim.diag() - sim.logsumexp(0))
    assert torch.allclose(symmetric_contrastive_loss(t, s, tau), 0.5 * (rows.mean() + cols.mean()))
    assert symmetric_contrastive_loss(s, s, 0.1) < symmetric_contrastive_loss(s.flip(0), s, 0.1)


def test_vae_and_denoiser_losses_drop(data):
    m = fresh(data)
    vae = train_vae(m, data, 100, batch=16, lr=2e-3)
    den = train_denoiser(m, data, 120, EMBED, batch=16, lr=2e-3)
    assert sum(vae[-10:]) / 10 < 0.75 * sum(vae[:5]) / 5
    assert sum(den[-20:]) / 20 < 0.7 * sum(den[:20]) / 20


def test_resumed_training_equals_uninterrupted(data, tmp_path):
    """Dropout on (config 0.1): the resume state carries torch's generator as well as the loop's."""
    ck = str(tmp_path / "vae.resume")
    straight = fresh(data)
    train_vae(straight, data, 12, batch=8)
    resumed = fresh(data)

    def interrupt(done, total):
        if done == 5:
            raise KeyboardInterrupt  # as ComfyUI's interrupt check raises
    with pytest.raises(KeyboardInterrupt):
        train_vae(resumed, data, 12, batch=8, ckpt_path=ck, progress=interrupt)
    torch.randn(100)  # other work in between moves torch's generator
    again = fresh(data)
    losses = train_vae(again, data, 12, batch=8, ckpt_path=ck)  # picks up at step 5
    assert len(losses) == 12
    for a, b in zip(straight.vae.state_dict().values(), again.vae.state_dict().values()):
        assert torch.equal(a, b)
    with safe_open(ck, framework="pt") as f:  # safetensors + JSON, no pickle
        assert f.metadata()["step"] == "12"
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_resume_of_another_job_is_refused_naming_the_setting(data, tmp_path):
    ck = str(tmp_path / "stylization.resume")
    m = fresh(data)
    m.style_encoder.init_from_vae(m.vae)
    train_stylization(m, data, 3, EMBED, batch=4, ckpt_path=ck)
    with pytest.raises(ResumeMismatch, match="lr was 1e-05, now 0.001"):
        train_stylization(m, data, 3, EMBED, batch=4, lr=1e-3, ckpt_path=ck)
    with pytest.raises(ResumeMismatch, match="seed"):
        train_stylization(m, data, 3, EMBED, batch=4, seed=5, ckpt_path=ck)
    with pytest.raises(ResumeMismatch, match="data"):
        train_stylization(m, data.subset(range(30)), 3, EMBED, batch=4, ckpt_path=ck)
    with pytest.raises(ResumeMismatch, match="steps"):
        train_stylization(m, data, 4, EMBED, batch=4, ckpt_path=ck)


def test_alignment_learns_to_retrieve_the_described_style(data):
    m = fresh(data)
    train_vae(m, data, 40, batch=16, lr=2e-3)
    m.style_encoder.init_from_vae(m.vae)
    losses = train_alignment(m, data, STYLE_TEXTS, EMBED, 150, lr=1e-2)
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20
    assert sorted(m.bank_labels) == sorted(STYLE_TEXTS)
    hits = 0
    for style, texts in STYLE_TEXTS.items():
        _, weights = m.style_from_embedding(EMBED(texts[0])[0])
        hits += max(weights, key=weights.get) == style
    assert hits >= 3  # of 5; chance is 1
    with pytest.raises(ValueError, match="expected width 16"):
        m.style_from_embedding(torch.randn(7))


def test_alignment_also_learns_from_image_embeddings(data, tmp_path):
    """Image anchors (here synthetic: one random direction per style plus noise, in the head's space)
    join the text anchors: held-out image queries then retrieve their style and text still works."""
    m = fresh(data)
    train_vae(m, data, 40, batch=16, lr=2e-3)
    m.style_encoder.init_from_vae(m.vae)
    g = torch.Generator().manual_seed(3)
    centres = {s: torch.randn(16, generator=g) for s in STYLE_TEXTS}

    def images(n):
        return {s: c + 0.3 * torch.randn(n, 16, generator=g) for s, c in centres.items()}
    ck = str(tmp_path / "alignment.resume")
    train_alignment(m, data, STYLE_TEXTS, EMBED, 150, lr=1e-2, image_embeds=images(8), ckpt_path=ck)
    held_out = images(4)
    hits = sum(max(w, key=w.get) == s for s, e in held_out.items() for w in (m.style_from_embedding(x)[1] for x in e))
    assert hits >= 12  # of 20; chance is 4
    hits = sum(max(w, key=w.get) == s for s, texts in STYLE_TEXTS.items() for t in texts for w in [m.style_from_embedding(EMBED(t)[0])[1]])
    assert hits >= 6  # of 15; chance is 3 (the text-only head of the test above gets 10: both share 16 input dims here)
    with pytest.raises(ResumeMismatch, match="image_embeds"):
        train_alignment(m, data, STYLE_TEXTS, EMBED, 150, lr=1e-2, image_embeds=held_out, ckpt_path=ck)
    with pytest.raises(ValueError, match=r"image_embeds\['old'\].*\[n, 16\]"):
        train_alignment(m, data, {}, EMBED, 5, image_embeds={"old": torch.randn(3, 7)})
