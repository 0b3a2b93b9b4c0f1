"""The expression rig: named controls and head pose -> displaced face-mesh landmarks and head/neck control points.

Each control is a linear blendshape on the 478 MediaPipe landmarks, built once per portrait in a face-local
frame (units of face height, so it adapts to any face size or tilt) with smooth spatial falloff. Head pose then
rotates everything in 3D about a pivot behind the nose, using the mesh depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warmchat import face as F
from warmchat.controls import CONTROLS, INDEX, POSE_INDEX

N_RING = 24  # control points on each ring around the head


@dataclass
class Rig:
    """Blendshape basis and control points for one portrait."""

    rest: np.ndarray  # (P, 3) rest positions: 478 landmarks, head ring, neck ring, image border (pixels)
    basis: np.ndarray  # (K, 478, 2) displacement of each landmark at control value 1 (pixels)
    head_weight: np.ndarray  # (P,) how fully each point follows the head pose (1 face/hair, <1 neck, 0 border)
    pivot: np.ndarray  # (3,) head rotation centre (pixels)
    face_height: float  # pixels
    n_landmarks: int = 478


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _gauss(pts: np.ndarray, center: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-np.sum((pts - center) ** 2, axis=-1) / (2 * sigma**2))


def build_rig_basis(landmarks: np.ndarray, size: int) -> Rig:
    """Build the rig for a face mesh (478, 3) in a square crop of `size` pixels."""
    lm = landmarks.astype(np.float64)
    xy = lm[:, :2]
    up = xy[F.FOREHEAD] - xy[F.CHIN]
    face_h = float(np.linalg.norm(up))
    up /= face_h
    down = -up
    right = np.array([-down[1], down[0]])  # image-right in the face's own frame (tilt-aware)
    origin = (xy[F.MOUTH_CORNER_L] + xy[F.MOUTH_CORNER_R]) / 2
    rel = xy - origin
    loc = np.stack([rel @ right, rel @ down], axis=1) / face_h  # (478, 2) face-local, units of face height

    def to_px(d_local: np.ndarray) -> np.ndarray:  # (478, 2) local displacement -> pixels
        return (d_local[:, :1] * right + d_local[:, 1:] * down) * face_h

    basis = np.zeros((len(CONTROLS), len(lm), 2))

    def put(name: str, d_local: np.ndarray) -> None:
        basis[INDEX[name]] = to_px(d_local)

    # jawOpen: the mandible rotates about hinges below the ears; seen from the front everything below the mouth
    # line drops, the chin most, fading towards the jaw angles. The upper lip lifts a touch.
    chin_y = loc[F.CHIN, 1]
    lower_lip = set(F.LOWER_INNER_LIP[1:-1] + F.LOWER_OUTER_LIP[1:-1])
    below = _smoothstep((loc[:, 1] + 0.02) / 0.08)
    side = 1.0 - 0.7 * _smoothstep((np.abs(loc[:, 0]) - 0.25) / 0.3)
    reach = 0.75 + 0.25 * _smoothstep(loc[:, 1] / max(chin_y, 1e-3))
    w_jaw = below * side * reach
    for i in lower_lip:
        w_jaw[i] = max(w_jaw[i], 0.95)
    d = np.zeros_like(loc)
    d[:, 1] = 0.2 * w_jaw
    d[:, 0] = -0.02 * w_jaw * loc[:, 0]  # the jaw narrows slightly as it opens
    upper = np.array(F.UPPER_INNER_LIP[1:-1] + F.UPPER_OUTER_LIP[1:-1])
    d[upper, 1] -= 0.012
    put("jawOpen", d)

    # Lip-corner controls: a Gaussian bump around each corner, on that side of the face only.
    for suffix, corner, sign in (("_L", F.MOUTH_CORNER_L, 1.0), ("_R", F.MOUTH_CORNER_R, -1.0)):
        c = loc[corner]
        w = _gauss(loc, c, 0.09) * _smoothstep(0.5 + sign * loc[:, 0] / 0.08)
        put("mouthSmile" + suffix, w[:, None] * np.array([sign * 0.045, -0.05]))
        put("mouthFrown" + suffix, w[:, None] * np.array([sign * 0.01, 0.045]))
        put("mouthStretch" + suffix, w[:, None] * np.array([sign * 0.05, 0.012]))

    lips = np.array(sorted(set(F.LIPS_INNER + F.UPPER_OUTER_LIP + F.LOWER_OUTER_LIP)))
    w_mouth = _gauss(loc, np.zeros(2), 0.07)
    d = np.zeros_like(loc)
    d[:, 0] = -0.35 * loc[:, 0] * w_mouth  # pucker: lips gather towards the centre
    d[lips, 0] = -0.35 * loc[lips, 0]
    put("mouthPucker", d)
    d = d.copy()
    d[:, 1] = 0.0
    d[np.array(F.LOWER_INNER_LIP[1:-1]), 1] = 0.03  # funnel: gathered lips part into an "oo"
    d[np.array(F.UPPER_INNER_LIP[1:-1]), 1] = -0.015
    put("mouthFunnel", d)
    d = np.zeros_like(loc)
    d[np.array(F.UPPER_OUTER_LIP[1:-1]), 1] = 0.012  # press: lips flatten and thin
    d[np.array(F.LOWER_OUTER_LIP[1:-1]), 1] = -0.012
    put("mouthPress", d)

    # Brows.
    for suffix, brow, sign in (("_L", F.BROW_L, 1.0), ("_R", F.BROW_R, -1.0)):
        brow_pts = loc[np.array(brow)]
        inner, outer = loc[brow[4]], loc[brow[0]]
        w_brow = _gauss(loc, brow_pts.mean(axis=0), 0.09) * _smoothstep(0.5 + sign * loc[:, 0] / 0.05)
        put("browDown" + suffix, w_brow[:, None] * np.array([-sign * 0.01, 0.035]))
        put("browOuterUp" + suffix, (_gauss(loc, outer, 0.07))[:, None] * np.array([0.0, -0.045]))
        basis[INDEX["browInnerUp"]] += to_px(_gauss(loc, inner, 0.06)[:, None] * np.array([0.0, -0.045]))

    # Eyes: blink drops the upper lid onto the lower lid; wide lifts it; squint lifts the lower lid.
    for suffix, up_ids, lo_ids in (("_L", F.EYE_L_UPPER, F.EYE_L_LOWER), ("_R", F.EYE_R_UPPER, F.EYE_R_LOWER)):
        up_ids, lo_ids = np.array(up_ids), np.array(lo_ids)
        eye_c = loc[np.concatenate([up_ids, lo_ids])].mean(axis=0)
        lower_y = np.interp(loc[up_ids, 0], *_sorted_xy(loc[lo_ids]))
        d = np.zeros_like(loc)
        d[up_ids, 1] = (lower_y - loc[up_ids, 1]) * 0.97
        # The iris ring inside this eye is squeezed down with the lid, or the lid would fold over it.
        iris = np.array(min((F.IRIS_A, F.IRIS_B), key=lambda ids: np.linalg.norm(loc[ids[0]] - eye_c)))
        iris_lower = np.interp(loc[iris, 0], *_sorted_xy(loc[lo_ids]))
        d[iris, 1] = (iris_lower - loc[iris, 1]) * 0.97
        # The crease and lid skin above follow partly so the closed lid is not a thin stretched line.
        above = _gauss(loc, eye_c + [0, -0.05], 0.04) * (loc[:, 1] < eye_c[1] - 0.02)
        d[:, 1] += above * np.mean(d[up_ids, 1]) * 0.5
        put("eyeBlink" + suffix, d)
        d = np.zeros_like(loc)
        d[up_ids, 1] = -0.018
        put("eyeWide" + suffix, d)
        d = np.zeros_like(loc)
        d[lo_ids, 1] = -0.014
        d[:, 1] += -0.01 * _gauss(loc, eye_c + [0, 0.05], 0.04)
        put("eyeSquint" + suffix, d)

    for cheek in (50, 280):
        basis[INDEX["cheekRaise"]] += to_px(_gauss(loc, loc[cheek], 0.08)[:, None] * np.array([0.0, -0.03]))
    nose_wings = np.array([48, 278, 129, 358, 64, 294])
    d = np.zeros_like(loc)
    d[:, 1] = -0.02 * np.max(np.stack([_gauss(loc, loc[i], 0.035) for i in nose_wings]), axis=0)
    put("noseSneer", d)

    # Gaze: the iris rings shift within the eye.
    irises = np.array(F.IRIS_A + F.IRIS_B)
    eye_w = np.linalg.norm(loc[F.EYE_R_CORNERS[0]] - loc[F.EYE_R_CORNERS[1]])
    d = np.zeros_like(loc)
    d[irises, 0] = 0.25 * eye_w
    put("gazeX", d)
    d = np.zeros_like(loc)
    d[irises, 1] = 0.15 * eye_w
    put("gazeY", d)

    # Extra control points: a hair ring and a neck/shoulder ring follow the head; the image border stays put.
    center = xy[np.array(F.FACE_OVAL)].mean(axis=0)
    ang = np.linspace(0, 2 * np.pi, N_RING, endpoint=False)
    oval = xy[np.array(F.FACE_OVAL)]
    radius = np.sqrt(((oval - center) ** 2).sum(axis=1)).max()
    hair = center + 1.35 * radius * np.stack([np.cos(ang), np.sin(ang) * 1.1], axis=1)
    neck = center + 2.0 * radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    border = _border_points(size, 8)
    z_ring = np.full((N_RING, 1), float(lm[:, 2].max()))
    rest = np.concatenate(
        [
            lm,
            np.concatenate([hair, z_ring], 1),
            np.concatenate([neck, z_ring], 1),
            np.concatenate([border, np.zeros((len(border), 1))], 1),
        ]
    ).astype(np.float64)
    head_weight = np.concatenate([np.ones(len(lm) + N_RING), np.full(N_RING, 0.25), np.zeros(len(border))])
    pivot = np.array([*(xy[F.NOSE_TIP] * 0.3 + center * 0.7), float(lm[F.NOSE_TIP, 2]) + 0.6 * face_h])
    return Rig(rest=rest, basis=basis.astype(np.float32), head_weight=head_weight, pivot=pivot, face_height=face_h)


def _sorted_xy(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]


def _border_points(size: int, per_side: int) -> np.ndarray:
    t = np.linspace(0, size - 1, per_side + 1)[:-1]
    s = size - 1
    return np.concatenate(
        [
            np.stack([t, np.zeros_like(t)], 1),
            np.stack([np.full_like(t, s), t], 1),
            np.stack([s - t, np.full_like(t, s)], 1),
            np.stack([np.zeros_like(t), s - t], 1),
        ]
    )


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation in image coordinates (x right, y down, z into the image): yaw about y, pitch x, roll z."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_points(rig: Rig, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """All control points for one frame.

    Args:
        expression: (K,) control values.
        pose: (6,) yaw, pitch, roll (radians), tx, ty (fraction of face height), scale.
    Returns:
        (P, 2) image positions in pixels.
    """
    pts = rig.rest.copy()
    pts[: rig.n_landmarks, :2] += np.tensordot(expression, rig.basis, axes=1)
    rot = rotation_matrix(pose[POSE_INDEX["yaw"]], pose[POSE_INDEX["pitch"]], pose[POSE_INDEX["roll"]])
    moved = (pts - rig.pivot) @ rot.T * pose[POSE_INDEX["scale"]] + rig.pivot
    moved[:, 0] += pose[POSE_INDEX["tx"]] * rig.face_height
    moved[:, 1] += pose[POSE_INDEX["ty"]] * rig.face_height
    w = rig.head_weight[:, None]
    return (pts[:, :2] * (1 - w) + moved[:, :2] * w).astype(np.float32)
