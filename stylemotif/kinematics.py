"""Forward and inverse kinematics of the 22-joint skeleton with rotation matrices.

FK:  G_j = G_parent(j) · L_j,   p_j = p_parent(j) + G_parent(j) · o_j   (o_j: rest offset of joint j).
IK inverts it per frame: a joint with several children takes the rotation that best maps its rest
child offsets onto the observed child vectors (Kabsch); a joint with one child takes the swing-only
rotation between the two directions; leaves get the identity. For positions produced by FK with the
same offsets (rigid bones), FK(IK(p)) = p up to float precision.
"""
import torch

from .skeleton import PARENTS, children


def rotation_between(a, b):
    """Smallest rotation R with R·â = b̂ (Rodrigues), batched over leading dims; a, b [..., 3]."""
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1)
    zero = torch.zeros_like(c)
    vx = torch.stack([zero, -v[..., 2], v[..., 1], v[..., 2], zero, -v[..., 0], -v[..., 1], v[..., 0], zero], -1)
    vx = vx.reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(vx)
    near_opposite = (1 + c) < 1e-9
    rot = eye + vx + vx @ vx / (1 + c).clamp_min(1e-9)[..., None, None]
    if near_opposite.any():  # 180 degrees about any axis orthogonal to a
        helper = torch.where(a[..., :1].abs() < 0.9, torch.tensor([1.0, 0, 0], dtype=a.dtype), torch.tensor([0, 1.0, 0], dtype=a.dtype))
        axis = torch.cross(a, helper, dim=-1)
        axis = axis / axis.norm(dim=-1, keepdim=True)
        flip = 2 * axis[..., :, None] * axis[..., None, :] - eye
        rot = torch.where(near_opposite[..., None, None], flip, rot)
    return rot


def kabsch(rest, target):
    """Rotation R minimising sum_k |R·rest_k/|rest_k| - target_k/|target_k||^2; rest, target [..., K, 3]."""
    rest = rest / rest.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    target = target / target.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    h = rest.transpose(-1, -2) @ target  # [..., 3, 3] = sum_k rest_k target_k^T
    u, _, vt = torch.linalg.svd(h)
    m = vt.transpose(-1, -2) @ u.transpose(-1, -2)
    d = torch.sign((torch.cross(m[..., 0], m[..., 1], dim=-1) * m[..., 2]).sum(-1))  # det of a 3x3
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return vt.transpose(-1, -2) @ fix @ u.transpose(-1, -2)


def forward_kinematics(local_rot, root_pos, offsets):
    """Joint positions [F, J, 3] from local rotations [F, J, 3, 3], root positions [F, 3], offsets [J, 3]."""
    glob, pos = [None] * len(PARENTS), [None] * len(PARENTS)
    for j, p in enumerate(PARENTS):
        if p < 0:
            glob[j], pos[j] = local_rot[:, j], root_pos
        else:
            glob[j] = glob[p] @ local_rot[:, j]
            pos[j] = pos[p] + (glob[p] @ offsets[j].to(local_rot))
    return torch.stack(pos, 1)


def inverse_kinematics(positions, offsets):
    """Local rotations [F, J, 3, 3] that reproduce positions [F, J, 3] by FK with the given offsets."""
    frames = positions.shape[0]
    offsets = offsets.to(positions)
    eye = torch.eye(3, dtype=positions.dtype).expand(frames, 3, 3)
    glob, local = [None] * len(PARENTS), [None] * len(PARENTS)
    for j, p in enumerate(PARENTS):
        parent_glob = eye if p < 0 else glob[p]
        kids = children(j)
        if not kids:
            local[j] = eye
        else:
            # child vectors in the parent's frame
            vec = positions[:, kids] - positions[:, j:j + 1]
            vec_local = (parent_glob.transpose(-1, -2)[:, None] @ vec[..., None])[..., 0]
            if len(kids) == 1:
                local[j] = rotation_between(offsets[kids[0]].expand_as(vec_local[:, 0]), vec_local[:, 0])
            else:
                local[j] = kabsch(offsets[kids].expand_as(vec_local), vec_local)
        glob[j] = parent_glob @ local[j]
    return torch.stack(local, 1)


def bone_lengths(positions):
    """Per-frame bone lengths [F, J] (0 for the root)."""
    lengths = [torch.zeros_like(positions[:, 0, 0])]
    for j, p in enumerate(PARENTS[1:], start=1):
        lengths.append((positions[:, j] - positions[:, p]).norm(dim=-1))
    return torch.stack(lengths, 1)
