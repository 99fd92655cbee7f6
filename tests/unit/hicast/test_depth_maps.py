import pytest
import torch

from hicast.depth_maps import depth_map, depth_model_folders, load_depth_model


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                 image_size=64, patch_size=16, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, backbone_out_indices=[0, 1, 2, 3],
                                 reassemble_factors=[4, 2, 1, 0.5])
    folder = tmp_path_factory.mktemp("depth") / "tiny-dpt"
    transformers.DPTForDepthEstimation(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def tiny_depth_anything(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    backbone = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                                         image_size=56, patch_size=14, out_indices=[1, 2, 3, 4],
                                         reshape_hidden_states=False)
    cfg = transformers.DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32],
                                           fusion_hidden_size=16, head_hidden_size=8, reassemble_hidden_size=32,
                                           patch_size=14)
    folder = tmp_path_factory.mktemp("depth") / "tiny-depth-anything"
    transformers.DepthAnythingForDepthEstimation(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def test_tiny_depth_anything_keeps_aspect_and_size(tiny_depth_anything):
    model = load_depth_model(str(tiny_depth_anything))
    images = torch.rand(2, 30, 50, 3, generator=torch.Generator().manual_seed(1))
    out = depth_map(model, images, resolution=28)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1


def test_tiny_dpt_gives_a_normalised_map_at_input_size(tiny_dpt):
    model = load_depth_model(str(tiny_dpt))
    images = torch.rand(3, 40, 56, 3, generator=torch.Generator().manual_seed(0))
    seen = []
    out = depth_map(model, images, resolution=64, batch_size=2, progress=lambda i, n, preview: seen.append((i, n, tuple(preview.shape))))
    assert out.shape == images.shape
    assert torch.allclose(out.amin(dim=(1, 2, 3)), torch.zeros(3)) and torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(3))
    assert torch.equal(out, depth_map(model, images, resolution=64, batch_size=2))  # deterministic
    assert torch.allclose(out, depth_map(model, images, resolution=64, batch_size=3), atol=1e-5)  # batch-independent
    assert seen == [(2, 3, (40, 56, 3)), (3, 3, (40, 56, 3))]  # progress with a preview of the latest map
    assert not torch.equal(out[0], out[1])


def test_folder_listing_and_missing_model_error(tiny_dpt, tmp_path):
    assert depth_model_folders(str(tiny_dpt.parent)) == ["tiny-dpt"]
    assert depth_model_folders(str(tmp_path / "absent")) == []
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "none")):
        load_depth_model(str(tmp_path / "none"))


def test_normalisation_comes_from_the_processor_config(tiny_dpt, tmp_path):
    import json
    import shutil
    from hicast.depth_maps import processor_normalization
    assert load_depth_model(str(tiny_dpt)).hicast_normalization == processor_normalization(str(tiny_dpt), "dpt")
    assert processor_normalization(str(tmp_path), "dpt") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # DPT processor default
    assert processor_normalization(str(tmp_path), "depth_anything")[0] == (0.485, 0.456, 0.406)
    folder = tmp_path / "own"
    shutil.copytree(tiny_dpt, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.1, 0.2, 0.3], "image_std": [1, 1, 1]}))
    model = load_depth_model(str(folder))
    assert model.hicast_normalization == ((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    images = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(depth_map(model, images, resolution=32), depth_map(load_depth_model(str(tiny_dpt)), images,
                                                                              resolution=32))
