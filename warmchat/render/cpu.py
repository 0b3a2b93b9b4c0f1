"""CPU renderer: a piecewise-linear mesh warp with `cv2.remap`, then a painted mouth interior and lash line."""

from __future__ import annotations

import numpy as np

from warmchat import face as F
from warmchat.face import FaceRig
from warmchat.rig import build_rig_basis, pose_points

MOUTH_DARK = np.array([52, 20, 24], dtype=np.float32)  # back of the mouth, RGB
MOUTH_LIGHT = np.array([120, 50, 55], dtype=np.float32)  # tongue / lit front of the cavity
TEETH = np.array([232, 226, 214], dtype=np.float32)


class CpuRenderer:
    """Animates one portrait by piecewise-affine warping of a triangulated mesh (face, head, neck and border points).

    Each frame the destination triangles are rasterised (far ones first, so the nearer surface wins where they
    overlap) into a triangle-index image; each pixel then takes its triangle's exact dst->src affine map, and one
    `cv2.remap` resamples the portrait. Exact per triangle, so lids and lips never fold or smear.
    """

    name = "cpu"

    def __init__(self, rig: FaceRig):
        from scipy.spatial import Delaunay

        self.face = rig
        self.rig = build_rig_basis(rig.landmarks, rig.size)
        src = self.rig.rest[:, :2]
        self._tris = Delaunay(src).simplices.astype(np.int32)  # (M, 3) vertex ids
        depth = self.rig.rest[self._tris, 2].mean(axis=1)
        self._order = np.argsort(-depth)  # far first; mesh z grows away from the camera
        ys, xs = np.mgrid[0 : rig.size, 0 : rig.size]
        self._xs, self._ys = xs.astype(np.float32), ys.astype(np.float32)
        self._image = rig.image
        rest = self.rig.rest[:, :2]
        self._rest_gap = float(
            np.max(rest[np.array(F.LOWER_INNER_LIP[1:-1]), 1] - rest[np.array(F.UPPER_INNER_LIP[1:-1]), 1])
        )

    def frame_points(self, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(P, 2) control-point positions for one frame."""
        return pose_points(self.rig, expression, pose)

    def _affine_maps(self, dst: np.ndarray) -> np.ndarray:
        """(M + 1, 2, 3) per-triangle dst->src affine maps; the extra last one is the identity."""
        tri_dst = dst[self._tris]  # (M, 3, 2)
        tri_src = self.rig.rest[self._tris, :2]  # (M, 3, 2)
        d = np.concatenate([tri_dst.transpose(0, 2, 1), np.ones((len(tri_dst), 1, 3))], axis=1)  # (M, 3, 3)
        det = np.linalg.det(d)
        d[np.abs(det) < 1e-9] = np.eye(3)  # collapsed triangles cover no pixels; any finite map will do
        maps = tri_src.transpose(0, 2, 1) @ np.linalg.inv(d)  # (M, 2, 3)
        identity = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
        return np.concatenate([maps, identity]).astype(np.float32)

    def render(self, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """One (S, S, 3) uint8 RGB frame for (K,) controls and a (6,) head pose."""
        import cv2

        pts = self.frame_points(expression, pose)
        size = self.face.size
        index = np.full((size, size), -1, np.int32)
        fixed = np.round(pts * 16).astype(np.int32)  # 4 fractional bits for sub-pixel edges
        for t in self._order:
            cv2.fillConvexPoly(index, fixed[self._tris[t]], int(t), lineType=cv2.LINE_8, shift=4)
        m = self._affine_maps(pts)[index]  # (S, S, 2, 3); index -1 picks the identity
        map_x = m[..., 0, 0] * self._xs + m[..., 0, 1] * self._ys + m[..., 0, 2]
        map_y = m[..., 1, 0] * self._xs + m[..., 1, 1] * self._ys + m[..., 1, 2]
        out = cv2.remap(self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._paint_mouth(out, pts)
        self._paint_lashes(out, pts, expression)
        return out

    def render_batch(self, expressions: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 frames for (B, K) controls and (B, 6) poses."""
        return np.stack([self.render(e, p) for e, p in zip(expressions, poses, strict=True)])

    def _paint_mouth(self, frame: np.ndarray, pts: np.ndarray) -> None:
        """Fill the open lips with a shaded cavity and teeth; painted after the warp so it never smears."""
        import cv2

        inner = pts[np.array(F.LIPS_INNER)]
        upper = pts[np.array(F.UPPER_INNER_LIP)]
        lower = pts[np.array(F.LOWER_INNER_LIP)]
        gap = float(np.max(lower[1:-1, 1] - upper[1:-1, 1]))
        # Paint only as far as the mouth opened beyond the photo: an open-mouthed portrait keeps its own teeth.
        opened = np.clip((gap - self._rest_gap) / (0.025 * self.rig.face_height), 0.0, 1.0)
        if gap < 1.0 or opened <= 0.0:
            return
        x0, y0 = np.floor(inner.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(inner.max(axis=0)).astype(int) + 3
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        h, w = y1 - y0, x1 - x0
        scale = 4  # supersampled mask for anti-aliased lip edges
        mask = np.zeros((h * scale, w * scale), np.uint8)
        poly = ((inner - [x0, y0]) * scale).round().astype(np.int32)
        cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255.0 * opened
        # Cavity: darker towards the back (centre), a little lighter at the bottom where the tongue sits.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx = inner[:, 0].mean() - x0
        rel_x = np.abs(xx - cx) / max(w / 2, 1)
        upper_y = np.interp(xx + x0, *_ordered(upper)) - y0
        lower_y = np.interp(xx + x0, *_ordered(lower)) - y0
        depth = np.clip((yy - upper_y) / np.maximum(lower_y - upper_y, 1), 0, 1)
        tongue = np.clip((depth - 0.6) / 0.4, 0, 1) * (1 - rel_x) * min(gap / 25.0, 1.0)
        color = MOUTH_DARK + (MOUTH_LIGHT - MOUTH_DARK) * (0.35 * rel_x + 0.65 * tongue)[..., None]
        # Upper teeth: a band below the upper lip, shaded towards the corners; lower teeth only when wide open.
        tooth_h = min(0.06 * self.rig.face_height, 0.45 * gap)
        teeth = ((yy - upper_y) < tooth_h) & ((yy - upper_y) >= 0) & (rel_x < 0.75)
        if gap > 0.1 * self.rig.face_height:
            teeth |= ((lower_y - yy) < 0.5 * tooth_h) & ((lower_y - yy) >= 0) & (rel_x < 0.6)
        shade = (1 - 0.45 * rel_x**2)[..., None]
        color = np.where(teeth[..., None], TEETH * shade, color)
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (roi * (1 - mask) + color * mask).astype(np.uint8)

    def _paint_lashes(self, frame: np.ndarray, pts: np.ndarray, expression: np.ndarray) -> None:
        """Darken the closing lid edge so a blink reads as a lash line, not a smeared eye."""
        import cv2

        from warmchat.controls import INDEX

        for name, ids in (("eyeBlink_L", F.EYE_L_UPPER), ("eyeBlink_R", F.EYE_R_UPPER)):
            amount = float(expression[INDEX[name]])
            if amount < 0.5:
                continue
            alpha = (amount - 0.5) / 0.5 * 0.6
            line = pts[np.array(ids)].round().astype(np.int32)
            overlay = frame.copy()
            thickness = max(1, round(self.rig.face_height / 120))
            cv2.polylines(overlay, [line], False, (35, 25, 25), thickness, lineType=cv2.LINE_AA)
            cv2.addWeighted(overlay, alpha, frame, 1 - alpha, 0, dst=frame)


def _ordered(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]
