"""The 22-joint HumanML3D skeleton (SMPL body joints without hands), y up, facing +z, left = +x.

REST_OFFSETS are the bone vectors of a standing adult in metres (parent joint -> joint); their
directions follow HumanML3D's t2m_raw_offsets except for the arms, which hang at the sides as in
SMPL. The procedural generator animates this skeleton and BVH export writes it as the rest pose.
"""
import torch

FPS = 20  # HumanML3D frame rate

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
NUM_JOINTS = len(JOINT_NAMES)

# Chains used for drawing (HumanML3D's t2m_kinematic_chain): right leg, left leg, spine, right arm, left arm.
KINEMATIC_CHAIN = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20))

# Joints whose positions give the facing direction (HumanML3D face_joint_indx): r_hip, l_hip, r_shoulder, l_shoulder.
FACE_JOINTS = (2, 1, 17, 16)
FOOT_LEFT = (7, 10)
FOOT_RIGHT = (8, 11)

REST_OFFSETS = torch.tensor([
    [0.0, 0.0, 0.0],       # pelvis (root)
    [0.07, -0.08, 0.0],    # left_hip
    [-0.07, -0.08, 0.0],   # right_hip
    [0.0, 0.11, -0.01],    # spine1
    [0.0, -0.38, 0.0],     # left_knee
    [0.0, -0.38, 0.0],     # right_knee
    [0.0, 0.13, 0.0],      # spine2
    [0.0, -0.40, -0.02],   # left_ankle
    [0.0, -0.40, -0.02],   # right_ankle
    [0.0, 0.06, 0.02],     # spine3
    [0.0, -0.05, 0.12],    # left_foot
    [0.0, -0.05, 0.12],    # right_foot
    [0.0, 0.21, -0.02],    # neck
    [0.08, 0.11, 0.0],     # left_collar
    [-0.08, 0.11, 0.0],    # right_collar
    [0.0, 0.09, 0.05],     # head
    [0.11, -0.02, 0.0],    # left_shoulder
    [-0.11, -0.02, 0.0],   # right_shoulder
    [0.0, -0.26, 0.0],     # left_elbow
    [0.0, -0.26, 0.0],     # right_elbow
    [0.0, -0.25, 0.0],     # left_wrist
    [0.0, -0.25, 0.0],     # right_wrist
], dtype=torch.float64)


def children(joint):
    return [j for j, p in enumerate(PARENTS) if p == joint]
