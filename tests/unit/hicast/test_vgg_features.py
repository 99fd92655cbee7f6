"""VGG-19 loss trunk read from torchvision's vgg19 layout; a narrow random file of that layout is the fixture."""
import pytest
import torch
from safetensors.torch import save_file

from hicast.losses import content_loss
from hicast.vgg_features import CONVS, VGG19Features, load_vgg19


def write(path, widths, drop=None, classifier=True):
    net = VGG19Features(widths)
    sd = {k: v for k, v in net.state_dict().items() if k != drop}
    if classifier:  # torchvision files carry the classifier too; it is ignored
        sd["classifier.0.weight"] = torch.zeros(2, 3)
    save_file(sd, str(path))
    return net


def test_torchvision_layout_loads_and_taps_relu_x_1(tmp_path):
    widths = [4, 4, 6, 6] + [8] * 4 + [10] * 5
    net = write(tmp_path / "vgg19.safetensors", widths)
    back = load_vgg19(str(tmp_path / "vgg19.safetensors"))
    assert sorted(int(k) for k in back.features.keys()) == list(CONVS)
    x = torch.rand(2, 3, 64, 48)
    feats = back(x)
    assert [tuple(f.shape) for f in feats] == [(2, 4, 64, 48), (2, 6, 32, 24), (2, 8, 16, 12), (2, 10, 8, 6), (2, 10, 4, 3)]
    assert all(torch.equal(a, b) for a, b in zip(feats, net(x)))
    assert back.content_levels == (3,)  # L_c on relu4_1 only
    y = torch.rand(2, 3, 64, 48)
    assert content_loss(back(x), back(y), back.content_levels) == pytest.approx(
        torch.nn.functional.mse_loss(feats[3], back(y)[3]).item())


def test_files_of_another_layout_are_refused_naming_the_key(tmp_path):
    widths = [4] * len(CONVS)
    write(tmp_path / "a.safetensors", widths, drop="features.19.weight")
    with pytest.raises(ValueError, match=r"loss_net a.safetensors: not a torchvision vgg19 state_dict \(missing features.19.weight"):
        load_vgg19(str(tmp_path / "a.safetensors"))
    sd = VGG19Features(widths).state_dict()
    sd["features.5.weight"] = torch.zeros(4, 3, 3, 3)  # conv2_1 must read conv1_2's 4 channels
    save_file(sd, str(tmp_path / "b.safetensors"))
    with pytest.raises(ValueError, match=r"features.5.weight has shape \(4, 3, 3, 3\)"):
        load_vgg19(str(tmp_path / "b.safetensors"))
