import pytest
import torch

from dreamstyle.long_video import Stitcher, colour_match, plan_chunks, stylize_in_chunks


@pytest.mark.parametrize("n,size,overlap", [(1, 81, 1), (81, 81, 1), (82, 81, 1), (200, 81, 8), (17, 5, 2), (10, 9, 8)])
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


@pytest.mark.parametrize("overlap", [1, 2, 4])
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
    with pytest.raises(ValueError, match="overlap: expected 1"):
        plan_chunks(100, 9, 0)  # chunk k+1 would start on a frame nobody stylized yet
    assert plan_chunks(5, 9, 0) == plan_chunks(5, 9, 1)  # one chunk: nothing to chain
    s = Stitcher(10)
    with pytest.raises(ValueError, match="uncovered"):
        s.add(plan_chunks(12, 5, 1)[2], torch.zeros(4, 1, 1, 3))


def faithful_stylizer(offset0, calls):
    """A stylizer that continues its first-frame condition exactly: out = raw + (first - raw[0]), or
    raw + offset0 without one. Chained at the right frame, the whole output is raw + offset0."""
    def stylize(i, chunk, frames, first):
        calls.append((chunk, None if first is None else first.clone()))
        return frames + (offset0 if first is None else first - frames[:1])
    return stylize


@pytest.mark.parametrize("chunk", [5, 9])
def test_chaining_from_the_right_frame_continues_the_video_exactly_for_every_length_and_overlap(chunk):
    for n in range(1, 3 * chunk + 2):
        for overlap in range(1, chunk):
            video = torch.linspace(0, 1, n).view(n, 1, 1, 1).expand(n, 2, 3, 3) ** 2  # a non-linear ramp
            calls = []
            out = stylize_in_chunks(video, faithful_stylizer(0.25, calls), chunk, overlap)
            assert out.shape == video.shape
            torch.testing.assert_close(out, video + 0.25, rtol=0, atol=1e-6,
                                       msg=f"n={n} chunk={chunk} overlap={overlap}: seam jump or misplaced frame")
            for (c, first), (prev, _) in zip(calls[1:], calls):
                assert prev.start < c.start < prev.stop  # starts on a frame the chunk before stylized


def test_first_chunk_gets_the_given_first_frame_and_colour_match_is_optional():
    video = torch.rand(13, 4, 4, 3, generator=torch.Generator().manual_seed(0))
    calls = []
    given = torch.rand(1, 4, 4, 3)
    stylize_in_chunks(video, faithful_stylizer(0.0, calls), 5, 2, first_frame=given)
    assert torch.equal(calls[0][1], given)

    def drifting(i, chunk, frames, first):  # each chunk brighter: colour drift along the chain
        return (frames * 0.5 + 0.1 * i).clamp(0, 1)
    plain = stylize_in_chunks(video, drifting, 5, 2)
    matched = stylize_in_chunks(video, drifting, 5, 2, match_colour=True)
    drift = lambda v: (v[-4:].mean() - v[:4].mean()).abs().item()  # noqa: E731
    assert drift(matched) < 0.5 * drift(plain)


def test_colour_match_gives_the_reference_statistics_on_the_shared_frames():
    g = torch.Generator().manual_seed(1)
    images, reference = torch.rand(6, 8, 8, 3, generator=g) * 0.5, 0.3 + torch.rand(2, 8, 8, 3, generator=g) * 0.4
    out = colour_match(images, reference, 2)
    torch.testing.assert_close(out[:2].mean(dim=(0, 1, 2)), reference.mean(dim=(0, 1, 2)), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[:2].std(dim=(0, 1, 2)), reference.std(dim=(0, 1, 2)), rtol=0, atol=1e-4)
