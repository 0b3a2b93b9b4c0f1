"""Measure what a renderer did: re-detect the face mesh on rendered frames and compare with what was commanded.

Used by the tests and by `benchmarks/bench_render.py`; every number is read back from pixels by the same tracker
that built the rig, never from the rig's own control points.
"""

from __future__ import annotations

import numpy as np

from warmchat import face as F

# Eye-aspect-ratio points (Soukupova & Cech 2016) on the MediaPipe mesh: corner, two upper, corner, two lower.
EAR_R = (33, 160, 158, 133, 153, 144)
EAR_L = (362, 385, 387, 263, 373, 380)
# Points that a head turn moves rigidly (forehead, nose, eye corners, cheekbones, brows), for pose read-back. The
# face outline is left out: the tracker puts it on the visible silhouette, which a turn changes.
RIGID = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 2, 98, 327, 33, 263, 133, 362, 116, 345, 105, 334, 50, 280)


def landmarks(frame: np.ndarray) -> np.ndarray | None:
    """(478, 3) landmarks of the largest face in a frame, or None when the tracker loses it."""
    faces = F.detect_landmarks(frame)
    return faces[0] if faces else None


def face_height(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[F.FOREHEAD, :2] - lm[F.CHIN, :2]))


def lip_gap(lm: np.ndarray) -> float:
    """Mean distance between the inner lips, as a fraction of face height."""
    up, lo = np.array(F.UPPER_INNER_LIP[1:-1]), np.array(F.LOWER_INNER_LIP[1:-1])
    return float(np.linalg.norm(lm[lo, :2] - lm[up, :2], axis=1).mean()) / face_height(lm)


def eye_aspect_ratio(lm: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (about 0.25-0.35 open, under 0.1 closed)."""
    out = []
    for p1, p2, p3, p4, p5, p6 in (EAR_R, EAR_L):
        v = np.linalg.norm(lm[p2, :2] - lm[p6, :2]) + np.linalg.norm(lm[p3, :2] - lm[p5, :2])
        out.append(v / (2 * np.linalg.norm(lm[p1, :2] - lm[p4, :2])))
    return float(np.mean(out))


def mouth_corner_height(lm: np.ndarray) -> float:
    """How far the lip corners sit above the lower lip's centre line, as a fraction of face height (a smile
    raises it; measured against the mouth itself so that a head nod does not count)."""
    corners = lm[[F.MOUTH_CORNER_L, F.MOUTH_CORNER_R], 1].mean()
    return float(lm[17, 1] - corners) / face_height(lm)


def head_pose(model: np.ndarray, image_pts: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees that best map a 3D face `model` (N, 3) onto 2D points (N, 2), by a scaled
    orthographic fit (POS, DeMenthon & Davis); angles follow `warmchat.rig.rotation_matrix`."""
    x = model - model.mean(axis=0)
    y = image_pts - image_pts.mean(axis=0)
    m = np.linalg.lstsq(x, y, rcond=None)[0].T  # (2, 3) = scale * first two rows of R
    r1 = m[0] / np.linalg.norm(m[0])
    r2 = m[1] - r1 * (r1 @ m[1])
    r2 /= np.linalg.norm(r2)
    rot = np.stack([r1, r2, np.cross(r1, r2)])
    yaw = np.degrees(np.arcsin(np.clip(-rot[2, 0], -1, 1)))  # R = Rz Ry Rx: R[2, 0] = -sin(yaw)
    pitch = np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    return float(yaw), float(pitch), float(roll)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def ssim_outside(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (grey, 7x7 windows) over the pixels where `mask` is False."""
    from skimage.metrics import structural_similarity

    ga = (a.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)
    gb = (b.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)
    _, full = structural_similarity(ga, gb, data_range=255, full=True)
    return float(full[~mask].mean())
