"""The MLD-faithful architecture against the official layout, and import_mld's conversion.

mld_humanml3d_keys.json lists every vae.* / denoiser.* tensor of the released MLD HumanML3D model
(MldVae + MldDenoiser built from the official code with configs/config_mld_humanml3d.yaml).
"""
import json
import os

import pytest
import torch

from stylemotif import import_mld
from stylemotif.model import StyleMotif, StyleMotifConfig

HERE = os.path.dirname(os.path.abspath(__file__))
UNUSED = {"denoiser.mem_pos.pe"}  # trans_enc never reads the memory position table; the importer drops it
TINY = StyleMotifConfig(latent_dim=32, layers=3, heads=2, ff_dim=48, text_dim=40, embed_dim=40, frames=16)


def official_table():
    with open(os.path.join(HERE, "mld_humanml3d_keys.json")) as f:
        return {k: tuple(v) for k, v in json.load(f).items()}


def test_full_size_state_dict_matches_the_official_layout_on_meta():
    with torch.device("meta"):
        model = StyleMotif()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith(("vae.", "denoiser."))}
    official = {k: v for k, v in official_table().items() if k not in UNUSED}
    assert ours == official
    assert len(official) == 422 and official["vae.global_motion_token"] == (2, 256)
    assert official["denoiser.emb_proj.1.weight"] == (256, 768) and official["denoiser.time_embedding.linear_1.weight"] == (256, 768)


def lightning_checkpoint(model, path):
    """A released-MLD-like file: Lightning dict, official names, CLIP and evaluator tensors alongside."""
    sd = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("vae.", "denoiser."))}
    sd["denoiser.mem_pos.pe"] = torch.rand(500, 1, model.config.latent_dim)
    sd["text_encoder.text_model.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    sd["t2m_textencoder.pos_emb.weight"] = torch.randn(15, 300)
    torch.save({"epoch": 3, "global_step": 10, "state_dict": sd}, path)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    torch.manual_seed(0)
    ref = StyleMotif(TINY).eval()
    d = tmp_path_factory.mktemp("mld")
    lightning_checkpoint(ref, str(d / "mld.ckpt"))
    mean, std = torch.randn(263), torch.rand(263) + 0.5
    import numpy as np
    np.save(d / "Mean.npy", mean.numpy())
    np.save(d / "Std.npy", std.numpy())
    rc = import_mld.main([str(d / "mld.ckpt"), str(d / "mld.safetensors"), "--mean", str(d / "Mean.npy"), "--std",
                          str(d / "Std.npy"), "--heads", "2"])
    assert rc == 0
    return ref, StyleMotif.load(str(d / "mld.safetensors")), d, mean


def close(a, b):
    return (a - b).abs().max() <= 1e-4 * b.abs().max()


def test_imported_model_matches_the_checkpoint_outputs(imported):
    ref, m, _, mean = imported
    assert not m.training and all(p.dtype == torch.float32 and p.device.type == "cpu" for p in m.parameters())
    assert m.config == StyleMotifConfig(**{**TINY.__dict__, "frames": 60})  # frames: a default, not in the tensors
    assert torch.equal(m.mean, mean)
    torch.manual_seed(1)
    z = torch.randn(3, 1, 32)
    assert m.vae.decode(z, 20).shape == (3, 20, 263) and close(m.vae.decode(z, 20), ref.vae.decode(z, 20))
    x = torch.randn(3, 20, 263)
    assert close(m.vae.encode(x)[1], ref.vae.encode(x)[1]) and m.vae.encode(x)[1].shape == (3, 1, 32)
    t, text = torch.tensor([0, 421, 999]), torch.randn(3, 1, 40)
    out = m.denoiser(z, t, text)
    assert out.shape == (3, 1, 32) and close(out, ref.denoiser(z, t, text))
    # the style encoder starts as the VAE encoder (StyleMotif's starting point)
    assert torch.equal(m.style_encoder(x), m.vae.encode(x)[1].mean(1))


def test_lengths_mask_padding_like_mld(imported):
    _, m, _, _ = imported
    x = torch.randn(2, 20, 263)
    x2 = x.clone()
    x2[1, 9:] = 1e3  # garbage past item 1's length must not matter
    mu = m.vae.encode(x, lengths=[20, 9])[1]
    assert torch.allclose(mu, m.vae.encode(x2, lengths=[20, 9])[1], atol=1e-5)
    assert torch.allclose(mu[1], m.vae.encode(x[1:, :9])[1][0], atol=1e-5)
    dec = m.vae.decode(mu, 20, lengths=[20, 9])
    assert (dec[1, 9:] == 0).all() and (dec[0] != 0).any()
    with pytest.raises(ValueError, match="lengths"):
        m.vae.decode(mu, 20, lengths=[21, 3])
    with pytest.raises(ValueError, match="frames"):
        m.vae.decode(mu, 501)


def test_import_refuses_pickles_foreign_layouts_and_overwrite(imported, tmp_path, capsys):
    _, _, d, _ = imported
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    torch.save({"state_dict": {}, "x": Evil()}, tmp_path / "evil.ckpt")
    assert import_mld.main([str(tmp_path / "evil.ckpt"), str(tmp_path / "o.safetensors")]) == 2
    assert not marker.exists() and "refusing to unpickle" in capsys.readouterr().err
    torch.save({"state_dict": {"vae.foo": torch.zeros(2)}}, tmp_path / "foreign.ckpt")
    assert import_mld.main([str(tmp_path / "foreign.ckpt"), str(tmp_path / "o.safetensors")]) == 2
    assert "not an MLD" in capsys.readouterr().err
    assert import_mld.main([str(d / "mld.ckpt"), str(d / "mld.safetensors"), "--heads", "2"]) == 2
    assert "exists" in capsys.readouterr().err


def test_guidance_uses_the_empty_prompt_features(imported):
    _, m, _, _ = imported
    text, empty = torch.randn(1, 1, 40), torch.randn(1, 1, 40)
    a = m.generate(text, empty, frames=8, steps=3, guidance=7.5)
    assert not torch.allclose(a, m.generate(text, torch.zeros(1, 1, 40), frames=8, steps=3, guidance=7.5))
    # guidance 1 is the conditional branch alone: the unconditional features do not matter
    assert torch.allclose(m.generate(text, empty, frames=8, steps=3, guidance=1.0),
                          m.generate(text, torch.zeros(1, 1, 40), frames=8, steps=3, guidance=1.0), atol=1e-5)
