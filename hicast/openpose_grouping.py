"""Multi-person OpenPose decoding: keypoint peaks + part affinity fields (PAFs) -> one skeleton per body.

For a body model with a 38-channel PAF output next to its heatmaps (the CMU OpenPose body model):
1. peaks: local maxima (3x3) of each upsampled heatmap U_k, smoothed by a Gaussian of half a heatmap cell as
   OpenPose does, above THRESHOLD; weaker maxima closer than one cell to a stronger one are dropped;
2. limb scores (Cao et al., OpenPose, eq. 10): for candidates p_a, p_b of a limb with PAF L = (L_x, L_y),
   E = 1/N sum_i L(p_a + i/(N-1) (p_b - p_a)) . u,  u = (p_b - p_a) / |p_b - p_a|, plus a length prior
   min(0, H / (2 |p_b - p_a|) - 1); a pair counts when E > 0 and >= 80 % of the N samples exceed 0.05;
3. per limb, pairs are taken greedily by score, each peak at most once (bipartite matching, eq. 13);
4. limbs sharing a peak join into one person; people with fewer than MIN_PARTS keypoints are dropped.
"""
import torch
import torch.nn.functional as F

# OpenPose body-18 limb (keypoint a, keypoint b) and its PAF channels (x, y) in the 38-channel output
PAF_LIMBS = (((1, 2), (12, 13)), ((1, 5), (20, 21)), ((2, 3), (14, 15)), ((3, 4), (16, 17)), ((5, 6), (22, 23)),
             ((6, 7), (24, 25)), ((1, 8), (0, 1)), ((8, 9), (2, 3)), ((9, 10), (4, 5)), ((1, 11), (6, 7)),
             ((11, 12), (8, 9)), ((12, 13), (10, 11)), ((1, 0), (28, 29)), ((0, 14), (30, 31)), ((14, 16), (34, 35)),
             ((0, 15), (32, 33)), ((15, 17), (36, 37)), ((2, 16), (18, 19)), ((5, 17), (26, 27)))
KEYPOINTS = 18
MIN_PARTS = 4
SAMPLES = 10


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of x [K, H, W] (reflect borders)."""
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.device)
    c = x.shape[0]
    x = F.pad(x[None], (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]


def find_peaks(up, threshold, radius):
    """up [K, H, W] -> per keypoint a list of (x, y, score) at local maxima above THRESHOLD (pixel centres),
    strongest first, none closer than RADIUS pixels to a stronger one."""
    local_max = F.max_pool2d(up[None], 3, stride=1, padding=1)[0]
    peaks = []
    for k in range(up.shape[0]):
        ys, xs = torch.nonzero((up[k] == local_max[k]) & (up[k] > threshold), as_tuple=True)
        found = sorted(((float(up[k, y, x]), float(x) + 0.5, float(y) + 0.5) for y, x in zip(ys.tolist(), xs.tolist())),
                       reverse=True)
        kept = []
        for score, x, y in found:
            if all((x - kx) ** 2 + (y - ky) ** 2 >= radius ** 2 for kx, ky, _ in kept):
                kept.append((x, y, score))
        peaks.append(kept)
    return peaks


def limb_pairs(pa, pb, paf_x, paf_y, height):
    """[(score, i, j)] of valid (p_a[i], p_b[j]) pairs for one limb, best first."""
    h, w = paf_x.shape
    out = []
    steps = torch.linspace(0, 1, SAMPLES)
    for i, (xa, ya, _) in enumerate(pa):
        for j, (xb, yb, _) in enumerate(pb):
            dx, dy = xb - xa, yb - ya
            norm = (dx * dx + dy * dy) ** 0.5
            if norm < 1e-6:
                continue
            xs = (xa + steps * dx).long().clamp(0, w - 1)
            ys = (ya + steps * dy).long().clamp(0, h - 1)
            s = (paf_x[ys, xs] * dx + paf_y[ys, xs] * dy) / norm
            score = float(s.mean()) + min(0.0, 0.5 * height / norm - 1.0)
            if score > 0 and int((s > 0.05).sum()) >= 0.8 * SAMPLES:
                out.append((score, i, j))
    return sorted(out, reverse=True)


def group_people(heatmaps, pafs, height, width, threshold=0.1, min_parts=MIN_PARTS):
    """heatmaps [18, h, w], pafs [38, h, w] (a model's outputs) -> people, each 18 (x, y) keypoints in frame
    pixels or None, sorted left to right."""
    size = (height, width)
    up = F.interpolate(torch.as_tensor(heatmaps, dtype=torch.float32)[None], size=size, mode="bilinear",
                       align_corners=False)[0]
    paf = F.interpolate(torch.as_tensor(pafs, dtype=torch.float32)[None], size=size, mode="bilinear",
                        align_corners=False)[0]
    cell = max(height / heatmaps.shape[-2], width / heatmaps.shape[-1])
    peaks = find_peaks(gaussian_blur(up, cell / 2), threshold, radius=cell)
    people = []  # each: list of 18 peak indices (or None)
    for (a, b), (cx, cy) in PAF_LIMBS:
        used_a, used_b = set(), set()
        for _, i, j in limb_pairs(peaks[a], peaks[b], paf[cx], paf[cy], height):
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            owners = [p for p in people if p[a] == i or p[b] == j]
            if not owners:
                person = [None] * KEYPOINTS
                person[a], person[b] = i, j
                people.append(person)
            elif len(owners) == 1:
                owner = owners[0]
                if owner[a] is None:
                    owner[a] = i
                if owner[b] is None:
                    owner[b] = j
            else:  # the limb joins two partial people: merge them when they do not overlap
                p, q = owners[:2]
                if all(x is None or y is None for x, y in zip(p, q)):
                    for k in range(KEYPOINTS):
                        p[k] = p[k] if p[k] is not None else q[k]
                    people.remove(q)
    skeletons = [[None if idx is None else peaks[k][idx][:2] for k, idx in enumerate(p)]
                 for p in people if sum(idx is not None for idx in p) >= min_parts]
    return sorted(skeletons, key=lambda s: min(pt[0] for pt in s if pt is not None))
