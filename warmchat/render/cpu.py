"""CPU renderer: a piecewise-affine mesh warp with `cv2.remap` over a still background, then a painted mouth
interior and closed lids.

Per frame: move the control points (rig); paint the moving triangles far to near straight into fixed-point remap
maps, the exact source position of every pixel (compiled scanline rasteriser, `raster.py`; face triangles turned
away from the camera culled; the identity elsewhere), and resample the head layer with `cv2.remap`. The head layer
is the portrait's person (hair, face, neck) wherever it follows the head, premultiplied by that mask; it is
composited over a background plate whose person area was filled from its surroundings, so the head can turn without
dragging the wall behind it or leaving its outline behind, and at rest the composite is the crop again (with the
lips closed, for a photo whose lips part: the mouth then shows the photo's own interior as it opens). Only where the
person layer was or can reach is drawn (in bands of rows, each as wide as that); everywhere else the frame is a
plain copy. The mouth interior is painted by a compiled pass (`paint.py`). A repeated (expression, pose) repeats the
previous frame, frames are drawn straight into the batch's array and per-frame arrays are reused, so memory stays
flat however long the video.
"""

from __future__ import annotations

import numpy as np

from warmchat import face as F
from warmchat.controls import INDEX, POSE_INDEX, rest_pose, zeros
from warmchat.face import FaceRig
from warmchat.rig import MeshRig, build_mesh_rig, pose_points

UPPER_IN, LOWER_IN = np.array(F.UPPER_INNER_LIP), np.array(F.LOWER_INNER_LIP)
LIDS = (  # blink control, upper-lid line from corner to corner
    ("eyeBlink_L", np.array((F.EYE_L_CORNERS[0], *F.EYE_L_UPPER, F.EYE_L_CORNERS[1]))),
    ("eyeBlink_R", np.array((F.EYE_R_CORNERS[0], *F.EYE_R_UPPER, F.EYE_R_CORNERS[1]))),
)
# Mouth interior colours (RGB, at a typical exposure; scaled to each portrait's skin brightness).
CAVITY_DEEP = np.array([26, 9, 8], np.float32)  # the back of the mouth, in shadow
CAVITY_WALL = np.array([84, 32, 30], np.float32)  # inner cheeks towards the corners
TONGUE = np.array([168, 82, 78], np.float32)
TEETH = np.array([238, 232, 218], np.float32)
REVEAL_FREE_DEG = 10.0  # a face turned less than this in the photo may turn back freely (see `render`)
BAND_ROWS = 32  # the warp is drawn in bands of rows, each only as wide as the layer can reach there


def fill_background(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill the pixels of low `weight` from the surrounding high-weight ones (push-pull over an image pyramid).

    Args:
        image: (H, W, 3) uint8.
        weight: (H, W) float in [0, 1]: how much each pixel is known background.
    Returns:
        (H, W, 3) float32 background estimate: the image where weight is 1, smooth fill where it is 0.
    """
    import cv2

    levels = []
    c = image.astype(np.float32) * weight[..., None]
    w = weight.astype(np.float32)
    while min(w.shape) > 4:
        levels.append((c, w))
        size = ((w.shape[1] + 1) // 2, (w.shape[0] + 1) // 2)
        c = cv2.resize(c, size, interpolation=cv2.INTER_AREA)
        w = cv2.resize(w, size, interpolation=cv2.INTER_AREA)
    filled = c.sum(axis=(0, 1)) / max(float(w.sum()), 1e-6) * np.ones_like(c)
    for c, w in reversed(levels):
        up = cv2.resize(filled, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        k = np.clip(w * 4.0, 0.0, 1.0)[..., None]  # trust a level's own average once it has a little support
        filled = c / np.maximum(w, 1e-6)[..., None] * k + up * (1 - k)
    return filled


class CpuRenderer:
    """Animates one portrait by piecewise-affine warping of its face mesh and hair/neck points (see module doc)."""

    name = "cpu"

    def __init__(self, rig: FaceRig):
        """Precompute everything that does not change per frame."""
        import cv2

        self.rig = rig
        self.mesh_rig: MeshRig = build_mesh_rig(rig.landmarks, rig.size, rig.person_mask)
        size = rig.size
        r = self.mesh_rig
        moves = (r.head_weight > 0) | (np.abs(r.basis).max(axis=(0, 2)) > 0)
        moving = moves[r.triangles].any(axis=1)
        self._tris = r.triangles[moving]  # (M, 3) only these are drawn; elsewhere the map is the identity
        # Surface triangles are always drawn after (over) the hair/neck/background ones.
        surface = np.arange(len(r.triangles))[moving] < r.n_face_triangles
        self._layer = np.where(surface, 0.0, 1e6)
        self._surface = surface
        self._rest = np.ascontiguousarray(r.rest[:, :2])  # (P, 2) where each point's texture is in the photo
        from warmchat.render.paint import blend, mouth_interior, skull_maps
        from warmchat.render.raster import composite, layer_spans, rasterize_maps

        self._rasterize, self._layer_spans = rasterize_maps, layer_spans
        self._composite = composite
        self._mouth_interior, self._blend, self._skull_maps = mouth_interior, blend, skull_maps
        self._buffers: dict[str, np.ndarray] = {}
        self._last: tuple[bytes, np.ndarray] | None = None  # the previous frame, for a repeated (expression, pose)

        # Head layer (premultiplied) over a background plate, exact at rest: crop = PF + (1 - a) B.
        alpha = np.round(r.head_alpha * 255).astype(np.uint8)
        # The plate is the photo wherever the person layer is not, and filled from the surroundings under all of it
        # (not under its solid part only: a plate keeping half of the hair's soft edge shows that edge as a ghost
        # outline once the head has moved off it), with the photo's grain so the fill is not suspiciously smooth.
        gray = cv2.cvtColor(rig.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grain = float(np.clip(np.median(np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 1.0))) * 1.4, 0.5, 6.0))
        self._grain = np.random.default_rng(0).normal(0, grain, (size, size, 1)).astype(np.float32)
        known = (alpha == 0).astype(np.float32)
        plate = fill_background(rig.image, known) + self._grain * (1 - known)[..., None]
        self._plate = np.clip(plate + 0.5, 0, 255).astype(np.uint8)
        # Where the photo is darker than the filled plate at the layer's soft edge (a stray hair over the wall), the
        # layer takes at least the opacity that explains it as something dark over the plate: `photo - (1 - alpha) x
        # plate` stays >= 0, the rest frame stays exact and the hair moves with the head instead of staying behind.
        plate16 = np.maximum(self._plate.astype(np.int32), 1)
        need = 255 - (255 * rig.image.astype(np.int32)) // plate16  # 255 x (1 - photo / plate), rounded up
        alpha = np.where(alpha > 0, np.maximum(alpha, np.clip(need.max(axis=2) + 1, 0, 255)), 0).astype(np.uint8)
        behind = cv2.multiply(self._plate, cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB), scale=1 / 255)
        # A photo with parted lips: the lips close at rest, so the warp must never show the teeth between them (the
        # mouth is painted from the photo when it opens): that texture gets its interior filled from the lips.
        self._interior = _photo_interior(rig.image, r) if r.photo_mouth_open else None
        texture = rig.image if self._interior is None else _lip_filled(rig.image, r)
        self._head = np.dstack([cv2.subtract(texture, behind), alpha])  # (S, S, 4) uint8, premultiplied
        # Only the person layer changes a frame: a pixel can differ from the photo only where the layer was (the plate
        # differs from the photo there) or where its source lies in the layer. A pixel's shift (source to frame) is a
        # blend of its triangle's corner shifts, so the box where the layer was, widened by the corner shifts of the
        # frame, holds every such pixel: outside it a frame is the photo itself.
        ys, xs = np.nonzero(r.head_alpha > 0)
        rows = (r.head_alpha > 0).any(axis=1)
        self._row_lo = np.where(rows, np.argmax(r.head_alpha > 0, axis=1), size)  # (S,) the layer's columns per row
        self._row_hi = np.where(rows, size - np.argmax(r.head_alpha[:, ::-1] > 0, axis=1), 0)
        self._still_box = np.array((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, 0, 0))
        self._drawn_points = np.unique(self._tris)  # (rig point ids)
        self._drawn_rest = r.rest[self._drawn_points, :2]

        rest = r.rest[:, :2] + (0 if r.neutral is None else r.neutral)
        self._rest_gap = float(np.max(np.linalg.norm(rest[LOWER_IN[1:-1]] - rest[UPPER_IN[1:-1]], axis=1)))
        self._colors = _portrait_colors(rig)
        self._mouth_colors = np.array([self._colors[k] for k in ("deep", "wall", "tongue", "teeth")], np.float32)
        self._rest_yaw = np.radians(F.head_angles(rig.landmarks)[0])
        self._reveal_gain = float(np.clip(1.0 - (abs(np.degrees(self._rest_yaw)) - REVEAL_FREE_DEG) / 25.0, 0.3, 1.0))
        self._lids = [(INDEX[control], ids, _lid_colors(rig, ids)) for control, ids in LIDS]
        # Lines whose rest position under the current head pose anchors painted parts (teeth, lids).
        self._rest_expression = zeros(1)[0]
        # Load the compiled kernels now (compile them, on a fresh install): the pipeline builds its renderers while
        # the first turn is written and spoken, so this is off the first frame's path. A frame with the mouth open
        # and the eyes shut runs every kernel with the argument types of real frames.
        expression = zeros(1)[0]
        expression[[INDEX["jawOpen"], INDEX["eyeBlink_L"], INDEX["eyeBlink_R"]]] = (0.6, 1.0, 1.0)
        self._draw(np.empty_like(rig.image), expression, rest_pose(1)[0])

    def render(self, expression: np.ndarray, pose: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One (S, S, 3) uint8 RGB frame for (K,) controls and a (6,) head pose, written into `out` if given."""
        if out is None:
            out = np.empty_like(self.rig.image)
        elif out.shape != self.rig.image.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            # The compiled kernels write rows of `out` in place, which a strided view would silently lose.
            raise ValueError(f"out must be a C-contiguous {self.rig.image.shape} uint8 array, got {out.shape}")
        key = _key(expression, pose)
        if self._last is not None and self._last[0] == key:  # a held pose: nothing to redraw
            np.copyto(out, self._last[1])
        else:
            self._draw(out, expression, pose)
            self._remember(key, out)
        return out

    def render_batch(self, expressions: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 frames for (B, K) controls and (B, 6) poses, drawn into one array."""
        frames = np.empty((len(expressions), *self.rig.image.shape), np.uint8)
        key = None
        for i, (e, p) in enumerate(zip(expressions, poses, strict=True)):
            previous, key = key, _key(e, p)
            if i and key == previous:  # a held pose repeats the frame before it
                np.copyto(frames[i], frames[i - 1])
            elif i == 0 and self._last is not None and self._last[0] == key:
                np.copyto(frames[i], self._last[1])
            else:
                self._draw(frames[i], e, p)
        if len(frames):  # the batch's last frame is remembered once, not every frame
            self._remember(key, frames[-1])
        return frames

    def _remember(self, key: bytes, frame: np.ndarray) -> None:
        if self._last is None:
            self._last = (key, frame.copy())
        else:  # the same array, reused: no allocation per frame
            np.copyto(self._last[1], frame)
            self._last = (key, self._last[1])

    def _draw(self, out: np.ndarray, expression: np.ndarray, pose: np.ndarray) -> None:
        """Draw the frame for (expression, pose) into `out`."""
        pose = self._damped(pose)
        pts3 = pose_points(self.mesh_rig, expression, pose)
        pts = pts3[:, :2]
        np.copyto(out, self.rig.image)
        self._warp(out, pts, pts3[:, 2])
        self._paint_mouth(out, pts, pose)
        for control, ids, colors in self._lids:
            amount = float(expression[control])
            if amount > 0.2:
                self._paint_lid(out, pts[ids], self._at_rest(pose, ids), colors, amount)

    def _at_rest(self, pose: np.ndarray, ids: np.ndarray, photo: bool = False) -> np.ndarray:
        """(N, 2) rig points `ids` at rest under the head pose, which anchor painted parts (teeth, lids); with
        `photo`, as the photo has them (see `pose_points`). Posed only when a frame paints those parts."""
        return pose_points(self.mesh_rig, self._rest_expression, pose, ids, photo=photo)[:, :2]

    def frame_points(self, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(P, 2) image positions of the rig's points (the 478 landmarks first) as `render` places them."""
        return pose_points(self.mesh_rig, expression, self._damped(pose))[:, :2]

    def _damped(self, pose: np.ndarray) -> np.ndarray:
        if pose[POSE_INDEX["yaw"]] * self._rest_yaw >= 0:
            return pose
        # Turning a turned face back towards the camera would show cheek the photo does not have; a warp can only
        # stretch the sliver it has, so that direction is damped.
        pose = pose.copy()
        pose[POSE_INDEX["yaw"]] *= self._reveal_gain
        return pose

    def _warp(self, out: np.ndarray, pts: np.ndarray, depth: np.ndarray) -> None:
        import cv2

        size = self.rig.size
        shift = pts[self._drawn_points] - self._drawn_rest
        shift_lo, shift_hi = shift.min(axis=0, initial=0), shift.max(axis=0, initial=0)
        lo = np.floor(self._still_box[:2] + shift_lo).astype(int) - 2  # 2: bilinear taps
        hi = np.ceil(self._still_box[2:] + shift_hi).astype(int) + 2
        x0, y0 = np.clip(lo, 0, size)
        x1, y1 = np.clip(hi, 0, size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        # Only bands of rows, each as wide as the layer can reach there, are drawn: exact dst -> src positions of
        # their pixels as fixed-point remap maps, triangles painted far to near. Per-frame arrays live in buffers
        # reused from frame to frame: no allocation, constant memory.
        box = np.array((x0, y0, x1, y1))
        spans = self._layer_spans(self._row_lo, self._row_hi, box, shift_lo, shift_hi, BAND_ROWS)
        h, w = y1 - y0, x1 - x0
        order = np.argsort(depth[self._tris].sum(axis=1) / -3 - self._layer, kind="stable")  # far to near
        m1, m2 = self._buffer("m1", (h, w, 2), np.int16), self._buffer("m2", (h, w), np.uint16)
        xy = m1.view(np.int32)[..., 0]  # each pixel's (x, y) int16 pair as one int32: one store per pixel
        self._rasterize(xy, m2, pts, self._rest, self._tris, order, self._surface, spans, x0, y0)
        warped = self._buffer("warped", (h, w, 4), np.uint8)
        for bx0, by0, bx1, by1 in spans - (x0, y0, x0, y0):
            if bx1 > bx0:
                band = np.s_[by0:by1, bx0:bx1]
                cv2.remap(
                    self._head, m1[band], m2[band], cv2.INTER_LINEAR, dst=warped[band], borderMode=cv2.BORDER_REPLICATE
                )
        self._composite(out, warped, self._plate, spans, x0, y0)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous array of `shape` over a buffer kept for the renderer's lifetime (sized for a full frame)."""
        n = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.size < n:
            channels = shape[2] if len(shape) == 3 else 1
            buf = np.empty(max(n, self.rig.size**2 * channels), dtype)
            self._buffers[name] = buf
        return buf[:n].reshape(shape)

    def _paint_mouth(self, frame: np.ndarray, pts: np.ndarray, pose: np.ndarray) -> None:
        """Fill the parted lips with a shaded cavity, teeth and tongue; painted after the warp so it never smears.

        Geometry is in mouth coordinates: u across (-1 at one corner, 1 at the other), v down, in pixels from the
        corner line. The upper teeth hang from the skull (the upper lip's rest line under the current head pose);
        the lower teeth and tongue ride on the jaw (the lower lip). A photo with parted lips shows its own interior
        instead of painted upper teeth: fixed to the skull, revealed as the lips part (see `_photo_mouth`).
        """
        import cv2

        up, lo = pts[UPPER_IN], pts[LOWER_IN]
        gap = float(np.max(np.linalg.norm(lo[1:-1] - up[1:-1], axis=1)))
        face_h = self.mesh_rig.face_height
        photo = self._interior is not None
        if photo:
            _paint_seam(frame, _smooth_line(up), _smooth_line(lo), face_h)
        # Painted teeth fade in as the lips part beyond their rest; a photo's own interior shows at once.
        opened = 1.0 if photo else float(np.clip((gap - self._rest_gap) / (0.02 * face_h), 0, 1))
        if gap < 1.0 or opened <= 0.0:
            return
        poly = np.concatenate([_smooth_line(up), _smooth_line(lo)[-2:0:-1]])  # lips are curves, not polygons
        x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + 3, frame.shape[1::-1])
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        h, w = y1 - y0, x1 - x0
        mask = _poly_mask(poly - [x0, y0], h, w, 0.0)  # anti-aliased, sharp lip edges

        color = self._buffer("mouth", (h, w, 3), np.float32)
        # The upper teeth hang from the upper lip's rest line under the head pose (a photo's own show instead).
        lines = np.stack([up, lo, up if photo else self._at_rest(pose, UPPER_IN)])
        self._mouth_interior(color, x0, y0, lines, self._mouth_colors, face_h, gap, not photo)
        color = cv2.GaussianBlur(color, (0, 0), 0.45 * max(face_h / 200.0, 0.6), dst=color)  # photographic
        color += self._grain[y0:y1, x0:x1]
        if photo:
            interior = self._photo_mouth(self._at_rest(pose, UPPER_IN, photo=True), x0, y0, x1, y1)
            color += (interior[..., :3] - color) * interior[..., 3:]
        self._blend(frame, color, mask * opened, x0, y0)

    def _photo_mouth(self, posed: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """The photo's own mouth interior over the patch [x0, x1) x [y0, y1): (h, w, 4) float32, colour and how much
        of it the photo has in [0, 1].

        The interior is fixed to the skull: each pixel shows the photo where the same spot of the head was, found by
        undoing the head pose's shift of the photo's upper lip at that point across the mouth. Below the photo's own
        opening (a mouth opened wider than in the photo) there is nothing to show and the painted cavity shows.

        Args:
            posed: (11, 2) the photo's upper inner lip under the current head pose.
        """
        import cv2

        src_upper, ox, oy, photo = self._interior
        maps = self._buffer("skull", (y1 - y0, x1 - x0, 2), np.float32)
        self._skull_maps(maps, x0 - ox, y0 - oy, posed - (ox, oy), src_upper - (ox, oy))
        # Colour and coverage in one remap; beyond the patch there is no interior (coverage 0).
        return cv2.remap(photo, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _paint_lid(self, frame: np.ndarray, lid: np.ndarray, lid_rest: np.ndarray, colors, amount: float) -> None:
        """A closing upper lid: the area it swept over (from its rest line down to where it is now) in lid-skin
        colour, then a lash line along its edge, thicker in the middle, instead of stretched, streaky pixels.

        Args:
            lid: (N, 2) the lid line now, corner to corner; lid_rest: the same line at rest under the current pose.
            colors: (N, 3) lid-skin colour above each point of the line.
            amount: the blink control, 0.2 .. 1.
        """

        face_h = self.mesh_rig.face_height
        lift = np.array([0.0, 0.008 * face_h])  # cover the lashes above the rest margin, too
        shape = np.concatenate([lid_rest - lift, lid[::-1] + lift / 2])
        x0, y0 = np.maximum(np.floor(shape.min(axis=0)).astype(int) - 3, 0)
        x1, y1 = np.minimum(np.ceil(shape.max(axis=0)).astype(int) + 6, frame.shape[1::-1])
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        h, w = y1 - y0, x1 - x0
        blur = 0.004 * face_h + 0.3
        skin = _poly_mask(shape - [x0, y0], h, w, blur) * (0.92 * _smoothstep((amount - 0.2) / 0.5))
        # Colour: the lid skin above each point of the line, a little darker towards the lash line.
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        axis = lid[-1] - lid[0]
        t = ((xx - lid[0, 0]) * axis[0] + (yy - lid[0, 1]) * axis[1]) / max(float(axis @ axis), 1.0)
        knots = np.linspace(0, 1, len(lid))
        color = np.stack([np.interp(t, knots, colors[:, c]) for c in range(3)], axis=-1)
        below = np.clip((yy - np.interp(xx, *_sorted_x(lid_rest))) / max(float(np.ptp(lid[:, 1])) + 2, 2), 0, 1)
        color *= (1.0 - 0.12 * below)[..., None]
        color += self._grain[y0:y1, x0:x1]
        # Lash line: a crescent along the lid edge, once the lid is mostly down.
        lash_a = min(max((amount - 0.4) / 0.5, 0.0), 1.0)
        if lash_a > 0:
            k = np.linspace(0, np.pi, len(lid))
            thick = (0.006 + 0.011 * np.sin(k) ** 1.5) * face_h
            crescent = np.concatenate([lid - [0, 0.002 * face_h], (lid + np.stack([0 * k, thick], 1))[::-1]])
            lash = _poly_mask(crescent - [x0, y0], h, w, blur * 0.8) * (0.95 * lash_a)
            color = color + (self._colors["lash"] - color) * lash[..., None]
            skin = np.maximum(skin, lash)
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = np.clip(roi + (color - roi) * skin[..., None] + 0.5, 0, 255).astype(np.uint8)


def _photo_interior(image: np.ndarray, mesh_rig: MeshRig) -> tuple[np.ndarray, int, int, np.ndarray]:
    """The photo's mouth opening: its upper inner-lip line (11, 2), and the photo around the opening (RGB) with how
    much of each pixel is interior (a fourth channel in [0, 1]), as an (h, w, 4) float32 patch at (x0, y0).

    The interior stops short of the lower lip (by a few pixels and a fraction of the gap), so the lower lip's inner
    rim never hangs from the skull with the teeth when the jaw drops.
    """
    size = int(mesh_rig.head_alpha.shape[0])
    up, lo = mesh_rig.rest[UPPER_IN, :2], mesh_rig.rest[LOWER_IN, :2]
    gap = np.linalg.norm(lo - up, axis=1, keepdims=True)
    lift = np.clip((0.15 * gap + 1.0) / np.maximum(gap, 1e-6), 0.0, 1.0)
    lo_short = lo + (up - lo) * lift
    mask = _poly_mask(np.concatenate([up, lo_short[-2:0:-1]]), size, size, 0.7)
    ys, xs = np.nonzero(mask > 0)
    if not len(xs):
        xs = ys = np.array([0, size - 1])
    x0, y0 = max(int(xs.min()) - 2, 0), max(int(ys.min()) - 2, 0)  # 2: a bilinear tap beyond the last covered pixel
    x1, y1 = min(int(xs.max()) + 3, size), min(int(ys.max()) + 3, size)
    patch = np.dstack([image[y0:y1, x0:x1].astype(np.float32), mask[y0:y1, x0:x1]])
    return up.astype(np.float64), x0, y0, patch


def _lip_filled(image: np.ndarray, mesh_rig: MeshRig) -> np.ndarray:
    """The image with the photo's mouth opening (teeth, shadow) filled in from the lips around it."""
    import cv2

    up, lo = mesh_rig.rest[UPPER_IN, :2], mesh_rig.rest[LOWER_IN, :2]
    hole = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(np.concatenate([up, lo[-2:0:-1]])).astype(np.int32)], 1)
    hole = cv2.dilate(hole, np.ones((3, 3), np.uint8))
    x, y, w, h = cv2.boundingRect(hole)
    pad = max(w, h) // 4 + 4
    x0, y0 = max(x - pad, 0), max(y - pad, 0)
    x1, y1 = min(x + w + pad, image.shape[1]), min(y + h + pad, image.shape[0])
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(image[y0:y1, x0:x1], hole[y0:y1, x0:x1], 3, cv2.INPAINT_TELEA)
    return out


def _poly_mask(poly: np.ndarray, h: int, w: int, blur: float) -> np.ndarray:
    """(h, w) float32 anti-aliased coverage of a polygon (pixel coordinates), softened by a Gaussian of `blur` px."""
    import cv2

    ss = 4
    mask = np.zeros((h * ss, w * ss), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * ss * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0.3 else mask


def _sorted_x(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]


def _lid_colors(rig: FaceRig, ids: np.ndarray) -> np.ndarray:
    """(N, 3) float32: the skin colour just above each point of an upper-lid line (median of a short vertical run)."""
    lm, img = rig.landmarks, rig.image
    face_h = rig.face_height
    up = lm[F.FOREHEAD, :2] - lm[F.CHIN, :2]
    up /= np.linalg.norm(up)
    side = np.array([-up[1], up[0]])
    offsets = np.linspace(0.012, 0.05, 6)[:, None, None] * up + np.linspace(-0.01, 0.01, 3)[None, :, None] * side
    out = []
    for p in lm[ids, :2]:
        xy = np.clip(np.round(p + offsets.reshape(-1, 2) * face_h).astype(int), 0, rig.size - 1)
        # A bright-ish percentile: lashes, brows and shadows around the eye are darker than lid skin.
        out.append(np.percentile(img[xy[:, 1], xy[:, 0]].astype(np.float32), 65, axis=0))
    out = np.array(out)
    smooth = (np.roll(out, 1, 0) + 2 * out + np.roll(out, -1, 0)) / 4
    smooth[[0, -1]] = out[[0, -1]]
    skin = _portrait_colors(rig)["skin"]
    return (0.93 * (0.5 * smooth + 0.5 * skin)).astype(np.float32)  # a closed lid sits a little in shadow


def _key(expression: np.ndarray, pose: np.ndarray) -> bytes:
    """What a frame is drawn from, as bytes: equal keys draw equal frames."""
    return np.asarray(expression, np.float32).tobytes() + np.asarray(pose, np.float32).tobytes()


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _paint_seam(frame: np.ndarray, up: np.ndarray, lo: np.ndarray, face_h: float) -> None:
    """Darken the lips' inner edges a little: where closed lips meet there is a fine shadow line, which a photo
    that had its lips parted does not have."""
    import cv2

    pts = np.concatenate([up, lo])
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 5, frame.shape[1::-1])
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    line = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for p in (up, lo):
        cv2.polylines(line, [np.round((p - [x0, y0]) * 16).astype(np.int32)], False, 255, 1, cv2.LINE_AA, 4)
    shadow = cv2.GaussianBlur(line.astype(np.float32) / 255.0, (0, 0), max(0.005 * face_h, 0.8))
    shadow = np.clip(shadow / max(float(shadow.max()), 1e-6), 0, 1)
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi * (1 - 0.16 * shadow[..., None]) + 0.5, 0, 255).astype(np.uint8)


def _catmull_rom(n: int, k: int) -> np.ndarray:
    """((n - 1) k + 1, n) matrix: n points of a line -> a Catmull-Rom curve through them, k samples per span (the
    ends extended by reflection)."""
    t = np.arange(k) / k
    w = 0.5 * np.stack([-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3], 1)
    ext = np.zeros((n + 2, n))  # the padded line from the line: q0 = 2 p0 - p1, q[n+1] = 2 p[n-1] - p[n-2]
    ext[1:-1] = np.eye(n)
    ext[0, :2] = (2, -1)
    ext[-1, -2:] = (-1, 2)
    rows = [w @ ext[i - 1 : i + 3] for i in range(1, n)]
    return np.concatenate([*rows, np.eye(n)[-1:]])


LIP_CURVE = _catmull_rom(len(F.UPPER_INNER_LIP), 4)
LIP_CURVE.setflags(write=False)  # shared by every renderer, so read-only


def _smooth_line(p: np.ndarray) -> np.ndarray:
    """A lip line (11, 2), corner to corner, as a curve through its points (41, 2): lips are curves, not polygons."""
    return LIP_CURVE @ p


def _portrait_colors(rig: FaceRig) -> dict[str, np.ndarray]:
    """Mouth and lash colours matched to the portrait's exposure and colour cast, from its cheek skin."""
    lm = rig.landmarks
    face_h = rig.face_height
    samples = []
    for cheek in (50, 280, 205, 425):
        x, y = np.round(lm[cheek, :2]).astype(int)
        r = max(int(0.03 * face_h), 1)
        patch = rig.image[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].reshape(-1, 3)
        if len(patch):
            samples.append(np.median(patch, axis=0))
    skin = np.mean(samples, axis=0).astype(np.float32) if samples else np.array([190, 150, 130], np.float32)
    luma = max(float(skin @ [0.299, 0.587, 0.114]), 1.0)
    gain = float(np.clip(luma / 165.0, 0.45, 1.1))  # a dim painting gets a dim mouth
    cast = 0.65 + 0.35 * skin / luma  # and its colour cast (a varnished painting's teeth are not white)
    teeth = np.clip(1.15 * luma, 80, 225) * cast * TEETH / TEETH.mean()  # a little brighter than the skin
    lid_ids = np.array(F.EYE_L_UPPER + F.EYE_R_UPPER)
    xy = np.round(lm[lid_ids, :2]).astype(int)
    xy = np.clip(xy, 0, rig.size - 1)
    lid_px = rig.image[xy[:, 1], xy[:, 0]].astype(np.float32)
    lash = np.minimum(np.percentile(lid_px, 15, axis=0), skin * 0.35)
    return {
        "deep": CAVITY_DEEP * gain * cast,
        "wall": CAVITY_WALL * gain * cast,
        "tongue": TONGUE * gain * cast,
        "teeth": np.minimum(teeth, 250).astype(np.float32),
        "lash": lash.astype(np.float32),
        "skin": skin,
    }
