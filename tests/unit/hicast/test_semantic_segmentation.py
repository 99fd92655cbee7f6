"""Semantic segmentation with a tiny random SegFormer saved in the transformers layout users download."""
import numpy as np
import pytest
import torch

from hicast.semantic_segmentation import (ADE20K_PALETTE, load_segmentation_model, palette, segmentation_model_folders,
                                          semantic_map)


@pytest.fixture(scope="module")
def tiny_segformer(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                       hidden_sizes=[8, 16], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                                       decoder_hidden_size=16, num_labels=150)
    folder = tmp_path_factory.mktemp("seg") / "tiny-segformer"
    transformers.SegformerForSemanticSegmentation(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def test_class_map_in_the_ade20k_palette_at_input_size(tiny_segformer):
    assert segmentation_model_folders(str(tiny_segformer.parent)) == ["tiny-segformer"]
    model = load_segmentation_model(str(tiny_segformer))
    images = torch.rand(3, 40, 56, 3, generator=torch.Generator().manual_seed(0))
    seen = []
    out = semantic_map(model, images, resolution=64, batch_size=2, progress=lambda i, n, p: seen.append((i, n)))
    assert out.shape == images.shape and seen == [(2, 3), (3, 3)]
    colours = {tuple(c) for c in (out * 255).round().byte().reshape(-1, 3).tolist()}
    assert colours <= set(ADE20K_PALETTE) and len(colours) >= 2  # several classes, every one an ADE20K colour
    assert torch.equal(out, semantic_map(model, images, resolution=64, batch_size=3))  # batch-independent


def test_palette_is_ade20k_for_150_classes_and_distinct_otherwise():
    assert len(ADE20K_PALETTE) == 150 and ADE20K_PALETTE[12] == (150, 5, 61)  # person, as the mediapipe path uses
    other = palette(19)
    assert other.shape == (19, 3) and len({tuple(c) for c in other.tolist()}) == 19


def test_missing_model_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="segformer"):
        load_segmentation_model(str(tmp_path / "none"))
