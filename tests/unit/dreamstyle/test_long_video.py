import pytest
import torch

from dreamstyle.long_video import Stitcher, plan_chunks


@pytest.mark.parametrize("n,size,overlap", [(1, 81, 0), (81, 81, 0), (82, 81, 0), (200, 81, 8), (17, 5, 2), (10, 9, 8)])
def test_chunks_cover_every_frame_within_the_size_limit(n, size, overlap):
    chunks = plan_chunks(n, size, overlap)
    assert chunks[0].start == 0 and chunks[-1].stop == n
    assert all(1 <= c.frames <= size for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert b.start == a.stop - overlap  # exactly `overlap` shared frames, no gap
    covered = torch.zeros(n, dtype=torch.long)
    for c in chunks:
        covered[c.start:c.stop] += 1
    assert covered.min() >= 1


@pytest.mark.parametrize("overlap", [0, 1, 4])
def test_stitching_gives_each_frame_once_and_crossfades_the_overlap(overlap):
    n = 23
    video = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, 2, 3).clone()
    chunks = plan_chunks(n, 9, overlap)
    s = Stitcher(n)
    for i, c in enumerate(chunks):
        s.add(c, video[c.start:c.stop] + 100 * i)  # each chunk's own "style" offset
    out = s.result()
    assert out.shape == video.shape
    first_overlap = range(chunks[1].start, chunks[0].stop)
    for f in range(n):
        owners = [i for i, c in enumerate(chunks) if c.start <= f < c.stop]
        lo, hi = 100 * owners[0] + f, 100 * owners[-1] + f
        assert lo <= out[f, 0, 0, 0].item() <= hi
    for k, f in enumerate(first_overlap, 1):  # weights move monotonically from chunk 0 to chunk 1
        assert out[f, 0, 0, 0].item() == pytest.approx(f + 100 * k / (overlap + 1))


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="chunk_frames"):
        plan_chunks(100, 97)
    with pytest.raises(ValueError, match="overlap"):
        plan_chunks(100, 9, 9)
    s = Stitcher(10)
    with pytest.raises(ValueError, match="uncovered"):
        s.add(plan_chunks(10, 5)[1], torch.zeros(5, 1, 1, 3))
