import math
import os

import pytest
import torch

from stylemotif.alignment import symmetric_contrastive_loss
from stylemotif.datasets import procedural_set
from stylemotif.model import StyleMotif, StyleMotifConfig
from stylemotif.procedural import STYLE_TEXTS
from stylemotif.training import fit_normalizer, train_alignment, train_denoiser, train_vae

TINY = StyleMotifConfig(latent_dim=32, heads=2, ff_dim=64, text_dim=16, embed_dim=16, frames=20, denoiser_depth=2)


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
    den = train_denoiser(m, data, 120, batch=16, lr=2e-3)
    assert sum(vae[-10:]) / 10 < 0.75 * sum(vae[:5]) / 5
    assert sum(den[-20:]) / 20 < 0.7 * sum(den[:20]) / 20


def test_resumed_training_equals_uninterrupted(data, tmp_path):
    ck = str(tmp_path / "vae.pt")
    straight = fresh(data)
    train_vae(straight, data, 12, batch=8)
    resumed = fresh(data)
    train_vae(resumed, data, 5, batch=8, ckpt_path=ck)  # "stopped" after 5 steps
    again = fresh(data)
    losses = train_vae(again, data, 12, batch=8, ckpt_path=ck)  # picks up at step 5
    assert len(losses) == 12
    for a, b in zip(straight.vae.state_dict().values(), again.vae.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.load(ck, weights_only=False)["step"] == 12
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_alignment_learns_to_retrieve_the_described_style(data):
    m = fresh(data)
    train_vae(m, data, 40, batch=16, lr=2e-3)
    m.style_encoder.init_from_vae(m.vae)
    losses = train_alignment(m, data, STYLE_TEXTS, m.text_encoder, 150, lr=1e-2)
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20
    assert sorted(m.bank_labels) == sorted(STYLE_TEXTS)
    hits = 0
    for style, texts in STYLE_TEXTS.items():
        _, weights = m.style_from_embedding(m.embed_text(texts[0])[0])
        hits += max(weights, key=weights.get) == style
    assert hits >= 3  # of 5; chance is 1
    with pytest.raises(ValueError, match="expected width 16"):
        m.style_from_embedding(torch.randn(7))
