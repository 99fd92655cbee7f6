import pytest
import torch

from dreamstyle.video_padding import crop_video, fit_image, pad_video, wan_frame_count


@pytest.mark.parametrize("n,expected", [(1, 1), (2, 5), (5, 5), (6, 9), (81, 81), (82, 85)])
def test_wan_frame_counts_are_4k_plus_1(n, expected):
    assert wan_frame_count(n) == expected


def test_pad_then_crop_is_exact_and_padding_repeats_edges():
    video = torch.rand(6, 30, 50, 3)
    padded = pad_video(video)
    assert padded.shape == (9, 32, 64, 3)
    for k in (6, 7, 8):                                        # last frame repeated
        assert torch.equal(padded[k, :30, :50], video[5])
    assert torch.equal(padded[2, 31, :50], video[2, 29])       # bottom edge replicated
    assert torch.equal(padded[2, :30, 63], video[2, :, 49])    # right edge replicated
    assert torch.equal(crop_video(padded, 6, 30, 50), video)


def test_fit_image_covers_and_center_crops():
    img = torch.zeros(1, 10, 40, 3)
    img[:, :, 18:22] = 1.0  # a bright band in the middle, 1/10 of the width
    out = fit_image(img, 20, 20)
    assert out.shape == (1, 20, 20, 3)
    assert out[0, 10, 10, 0] > 0.9 and out[0, 10, 0, 0] < 0.1
    same = torch.rand(2, 16, 16, 3)
    assert fit_image(same, 16, 16) is same
