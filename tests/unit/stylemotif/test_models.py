import json

import pytest
import torch
from safetensors import safe_open

from stylemotif.cross_norm import cross_norm
from stylemotif.model import StyleMotif, StyleMotifConfig
from stylemotif.style_bank import StyleBank, blend_styles

TINY = StyleMotifConfig(latent_dim=32, layers=5, heads=2, ff_dim=64, text_dim=16, embed_dim=16, frames=12)
NULL = torch.zeros(1, 1, 16)


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = StyleMotif(TINY).eval()
    m.set_bank(torch.randn(3, 32), ["a", "b", "c"])
    return m


def test_shapes(model):
    x = torch.randn(2, 12, 263)
    z, mu, logvar = model.vae.encode(x)
    assert z.shape == mu.shape == logvar.shape == (2, 1, 32)
    assert model.vae.decode(z, 17).shape == (2, 17, 263)
    assert model.style_encoder(x).shape == (2, 32)
    assert model.denoiser(z, torch.tensor([10, 500]), torch.randn(2, 1, 16)).shape == (2, 1, 32)


@pytest.mark.parametrize("m", [0, 2, 4])
def test_fusion_happens_once_right_after_block_m(model, m):
    """Execution order of the 5-layer skip stack: input 0, input 1, middle (2), output 0 (3), output 1 (4)."""
    enc = model.denoiser.encoder
    order = [*enc.input_blocks, enc.middle_block, *enc.output_blocks]
    seen, fused = [], []
    handles = [b.register_forward_hook(lambda mod, i, o, k=k: seen.append((k, i[0], o))) for k, b in enumerate(order)]
    handles.append(model.denoiser.fusion.register_forward_hook(lambda mod, i, o: fused.append((i[0], i[1], i[2], o))))
    z, t, text, style = torch.randn(2, 1, 32), torch.tensor([3, 900]), torch.randn(2, 1, 16), torch.randn(2, 32)
    model.denoiser(z, t, text, style=style, gamma=0.6, fuse_after=m)
    for h in handles:
        h.remove()
    assert [k for k, _, _ in seen] == [0, 1, 2, 3, 4] and len(fused) == 1
    f_in, f_style, f_gamma, f_out = fused[0]
    assert f_gamma == 0.6 and torch.equal(f_style, style)
    assert torch.equal(f_in, seen[m][2])  # the fusion reads block m's output
    assert torch.allclose(f_out, cross_norm(seen[m][2], style, 0.6)) and not torch.allclose(f_out, f_in)
    cats = []
    handles = [lin.register_forward_hook(lambda mod, i, o, j=j: cats.append((j, i[0]))) for j, lin in enumerate(enc.linear_blocks)]
    model.denoiser(z, t, text, style=style, gamma=0.6, fuse_after=m)
    for h in handles:
        h.remove()
    cats = dict(cats)
    if m == 0:  # input block 0: feeds input block 1 directly and, through the long skip, output block 1
        assert torch.equal(seen[1][1], f_out) and torch.equal(cats[1][..., 32:], f_out)
    elif m in (2, 3):  # the middle / output block 0: feeds the next output block through its skip linear
        assert torch.equal(cats[m - 2][..., :32], f_out)
    with pytest.raises(ValueError, match="block m"):
        model.denoiser(z, t, text, style=style, fuse_after=5)


def test_gamma_zero_equals_unstylized_sampling_bit_for_bit(model):
    text = torch.randn(2, 1, 16)
    plain = model.generate(text, NULL, steps=5, seed=11)
    zero = model.generate(text, NULL, style=torch.randn(32) * 5, gamma=0.0, steps=5, seed=11)
    styled = model.generate(text, NULL, style=torch.randn(32) * 5, gamma=0.6, steps=5, seed=11)
    other_seed = model.generate(text, NULL, steps=5, seed=12)
    assert torch.equal(plain, zero)
    assert not torch.allclose(plain, styled)
    assert not torch.allclose(plain, other_seed)
    assert plain.shape == (2, 12, 263)


def test_transfer_keeps_length_and_uses_style_text_and_guidance(model):
    content, style, text = torch.randn(20, 263), torch.randn(32), torch.randn(1, 1, 16)
    a = model.transfer(content, style, text, NULL, strength=0.6, steps=5, seed=0)
    b = model.transfer(content, style, text, NULL, strength=0.6, steps=5, seed=0, gamma=0.0)
    unguided = model.transfer(content, style, text, NULL, strength=0.6, steps=5, seed=0, guidance=1.0)
    other_text = model.transfer(content, style, torch.randn(1, 1, 16), NULL, strength=0.6, steps=5, seed=0)
    assert a.shape == (1, 20, 263)
    for other in (b, unguided, other_text):
        assert not torch.allclose(a, other)
    with pytest.raises(ValueError, match="style"):
        model.transfer(content, torch.full((32,), float("nan")), text, NULL)
    with pytest.raises(ValueError, match="text: contains NaN"):
        model.transfer(content, style, torch.full((1, 1, 16), float("inf")), NULL)


def test_save_load_round_trip_with_config_in_metadata(model, tmp_path):
    path = str(tmp_path / "m.safetensors")
    model.save(path)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["stylemotif_config"])["latent_dim"] == 32
    assert json.loads(meta["style_bank_labels"]) == ["a", "b", "c"]
    back = StyleMotif.load(path)
    assert back.config == TINY and back.bank_labels == ["a", "b", "c"]
    text = torch.randn(1, 1, 16)
    assert torch.equal(back.generate(text, NULL, steps=3, seed=1), model.generate(text, NULL, steps=3, seed=1))
    with pytest.raises(ValueError, match="text: text embedding: expected width 16"):
        back.generate(torch.randn(1, 1, 15), NULL)


def test_load_checks_metadata_against_tensors_before_building(model, tmp_path):
    from safetensors.torch import load_file, save_file
    path = str(tmp_path / "m.safetensors")
    model.save(path)
    tensors = load_file(path)
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
    cases = {"huge": {**json.loads(meta["stylemotif_config"]), "latent_dim": 10 ** 6},
             "mismatch": {**json.loads(meta["stylemotif_config"]), "ff_dim": 4096},
             "unknown": {**json.loads(meta["stylemotif_config"]), "evil": 1}}
    for name, cfg in cases.items():
        save_file(tensors, str(tmp_path / f"{name}.safetensors"), metadata={**meta, "stylemotif_config": json.dumps(cfg)})
    with pytest.raises(ValueError, match="latent_dim = 1000000 is outside"):
        StyleMotif.load(str(tmp_path / "huge.safetensors"))
    with pytest.raises(ValueError, match="do not match the config.*linear1"):
        StyleMotif.load(str(tmp_path / "mismatch.safetensors"))
    with pytest.raises(ValueError, match="unexpected config fields"):
        StyleMotif.load(str(tmp_path / "unknown.safetensors"))


def test_blend_is_a_normalised_weighted_sum():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    assert torch.allclose(blend_styles(s, [1, 3, 0]), torch.tensor([0.25, 1.5]))
    assert torch.allclose(blend_styles(s, [0, 0, 2]), s[2])
    with pytest.raises(ValueError, match="weights"):
        blend_styles(s, [0, 0, 0])


def test_bank_retrieves_nearest_and_blends_top_k():
    bank = StyleBank(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), ["x", "y", "z"])
    vec, w = bank.retrieve(torch.tensor([0.9, 0.1]), top_k=1)
    assert torch.equal(vec, bank.get("x")) and w == {"x": 1.0}
    vec, w = bank.retrieve(torch.tensor([1.0, 1.0]), top_k=2)
    assert set(w) == {"x", "y"} and abs(w["x"] - 0.5) < 1e-6
    assert torch.allclose(vec, torch.tensor([0.5, 0.5]))
