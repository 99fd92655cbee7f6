import cv2
import numpy as np
import pytest
import torch

from hicast.edge_maps import canny, soft_edge
from hicast.image_batch import as_rgb_batch, to_uint8


def _dilate(mask):
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def test_cv2_canny_matches_opencv_reference_per_frame(photos):
    batch = torch.cat([photos["astronaut"][:, :300, :451], photos["chelsea"]])  # chelsea is 300x451
    out = canny(batch, 80, 160, backend="cv2")
    assert out.shape == batch.shape and out.dtype == torch.float32
    for i, frame in enumerate(to_uint8(batch)):
        ref = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 80, 160, L2gradient=True)
        assert np.array_equal((out[i, ..., 0].numpy() * 255).round().astype(np.uint8), ref)
        assert torch.equal(out[i, ..., 0], out[i, ..., 2])


def test_canny_batched_equals_one_frame_at_a_time(photos):
    batch = torch.cat([photos["astronaut"], photos["astronaut"].flip(1), photos["astronaut"] * 0.5])
    whole = canny(batch)
    for i in range(3):
        assert torch.equal(whole[i:i + 1], canny(batch[i:i + 1]))


def test_kornia_canny_finds_the_cv2_edges(photos):
    img = torch.nn.functional.interpolate(photos["astronaut"].permute(0, 3, 1, 2), size=(128, 128),
                                          mode="area").permute(0, 2, 3, 1)
    ref = canny(img, 100, 200, backend="cv2")[0, ..., 0].numpy() > 0.5
    got = canny(img, 100, 200, backend="kornia")[0, ..., 0].numpy() > 0.5
    recall = (ref & _dilate(got)).sum() / ref.sum()
    assert ref.sum() > 200 and recall > 0.95


def test_higher_thresholds_give_fewer_edges(photos):
    low = canny(photos["coffee"], 50, 100).sum()
    high = canny(photos["coffee"], 150, 300).sum()
    assert 0 < high < low


def test_soft_edge_matches_opencv_blurred_sobel(photos):
    img = photos["coffee"][:, :200, :240]
    sigma, gamma = 1.5, 0.6
    out = soft_edge(img, sigma=sigma, gamma=gamma)
    grey = img[0].numpy() @ np.array([0.299, 0.587, 0.114], np.float32)
    k = 2 * round(3 * sigma) + 1
    blurred = cv2.GaussianBlur(grey, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    mag = np.sqrt(gx ** 2 + gy ** 2)
    ref = (mag / mag.max()) ** gamma
    assert np.abs(out[0, ..., 0].numpy() - ref).max() < 2e-3
    assert out.shape == img.shape


def test_grey_and_rgba_inputs_are_converted():
    g = torch.rand(2, 32, 40, generator=torch.Generator().manual_seed(0))
    rgb = as_rgb_batch(g)
    assert rgb.shape == (2, 32, 40, 3) and torch.equal(rgb[..., 0], rgb[..., 2])
    rgba = torch.cat([rgb, torch.full((2, 32, 40, 1), 0.5)], -1)
    assert torch.allclose(as_rgb_batch(rgba), rgb * 0.5)
    assert canny(g).shape == (2, 32, 40, 3)


@pytest.mark.parametrize("bad, needle", [(torch.rand(1, 8, 8, 2), "IMAGE batch"), (np.zeros((1, 8, 8, 3)), "torch"),
                                         (torch.rand(0, 8, 8, 3), "at least one frame")])
def test_bad_images_are_refused_with_a_clear_error(bad, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        canny(bad)


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="low_threshold"):
        canny(torch.rand(1, 8, 8, 3), 200, 100)
