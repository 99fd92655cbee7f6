import pytest
import torch

from stylemotif.cross_norm import cross_norm


def test_cross_norm_matches_the_equation_on_hand_made_tensors():
    fc = torch.tensor([[[1.0, 2.0, 3.0, 6.0]]])  # mu = 3, sigma^2 = (4 + 1 + 0 + 9) / 4 = 3.5
    fs = torch.tensor([[0.0, 1.0, 5.0, -1.0]])
    out = cross_norm(fc, fs, gamma=0.5, eta=0.5)  # sqrt(3.5 + 0.5) = 2
    expected = fc + 0.5 * (fs[:, None] - 3.0) / 2.0
    assert torch.allclose(out, expected)
    assert torch.allclose(out, torch.tensor([[[0.25, 1.5, 3.5, 5.0]]]))


def test_statistics_are_over_the_feature_dim_per_token():
    fc = torch.stack([torch.arange(4.0), 10 * torch.arange(4.0) + 7])[None]  # two tokens, different stats
    fs = torch.ones(1, 4)
    out = cross_norm(fc, fs, gamma=1.0, eta=0.0)
    for t in range(2):
        mu, var = fc[0, t].mean(), fc[0, t].var(unbiased=False)
        assert torch.allclose(out[0, t], fc[0, t] + (1 - mu) / var.sqrt())


def test_gamma_zero_is_identity_and_width_is_checked():
    fc = torch.randn(2, 3, 8)
    assert torch.equal(cross_norm(fc, torch.randn(2, 8), gamma=0.0), fc)
    with pytest.raises(ValueError, match="width"):
        cross_norm(fc, torch.randn(2, 7))
