"""The expression rig: named controls and head pose -> displaced face-mesh landmarks and head/neck control points.

Each control is a linear blendshape on the control points, built once per portrait in a face-local frame (units of
face height, so it adapts to any face size or tilt) with smooth spatial falloff. The rest is a closed mouth: a photo
with parted lips gets a fixed displacement that closes them (`MeshRig.neutral`), so `jawOpen = 0` shuts any mouth.
Head pose then rotates everything in 3D about a pivot between the ears, using the mesh depth; hair and neck points
follow with a weight taken from the person mask, so the background stays put.

The mesh is MediaPipe's own face tessellation (its surface topology, with holes at the eyes and mouth), those holes
filled with triangles of our own (a strip across the lips, the visible iris inside each eye), and around it a
Delaunay triangulation of a grid of hair, neck and background points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warmchat import face as F
from warmchat.controls import CONTROLS, INDEX, POSE_INDEX
from warmchat.loading import load_once

N_LANDMARKS = 478
JAW_MAX_RAD = 0.42  # mandible rotation at jawOpen = 1 (about 24 degrees: a wide-open mouth)
GRID_STEP = 0.18  # spacing of the hair/neck/background points, face heights
BAND = 0.25  # width over which head-following fades to the static background, face heights
NECK_FADE = (0.05, 0.45)  # below the chin (face heights): the neck follows the head fully above, not at all below
MIN_MOVE_PX = 0.05  # blendshape displacements below this are dropped, so far-away triangles stay static
MATTE_FLOOR = 0.03  # person-mask values below this are background: the segmenter's faint haze around people
FRINGE = 0.05  # face heights beyond the person mask that still move with the head, faintly ...
FRINGE_ALPHA = 0.3  # ... from this opacity at the mask's edge down to none
MIN_LIP_GAP = 0.012  # face heights: a photo whose lips part less than this at the centre counts as closed-mouthed
LIP_RIM = 0.01  # face heights: how far into each lip the closed lips' meeting edge takes its texture from
UPPER_LIP_SHARE = 0.3  # of the photo's lip opening, closed by the upper lip coming down; the jaw closes the rest


@dataclass
class MeshRig:
    """The animatable 3D mesh model of one portrait: control points (the 478 landmarks with depth, plus hair, neck and
    background points), their blendshape basis, head-follow weights and triangles. Built from a `face.FaceRig` (the
    cropped portrait) by `build_mesh_rig`; posed per frame by `pose_points`."""

    rest: np.ndarray  # (P, 3) where each point's texture is in the photo (pixels): 478 landmarks, then hair/neck/
    # background points; the rest pose is these plus `neutral`
    basis: np.ndarray  # (K, P, 2) displacement of each point at control value 1 (pixels)
    head_weight: np.ndarray  # (P,) how fully each point follows the head pose (1 face/hair, <1 neck, 0 background)
    head_alpha: np.ndarray  # (S, S) float32: the part of the image that moves with the head (person x neck fade)
    pivot: np.ndarray  # (3,) head rotation centre (pixels)
    triangles: np.ndarray  # (M, 3) int32 point ids; the first `n_face_triangles` lie on the face surface, oriented
    # so that their area in the image is positive while they face the camera
    n_face_triangles: int
    face_height: float  # pixels
    neutral: np.ndarray | None = None  # (P, 2) pixels: photo -> the rig's rest (lips closed), added every frame
    n_landmarks: int = N_LANDMARKS

    @property
    def photo_mouth_open(self) -> bool:
        """Whether the photo's lips are parted (its mouth interior is visible and the rest closes it)."""
        return self.neutral is not None and bool(np.any(self.neutral))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _gauss(pts: np.ndarray, center: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-np.sum((pts - center) ** 2, axis=-1) / (2 * sigma**2))


def _interp_line(pts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y of the polyline through `pts` (N, 2) at each x (clamped at its ends)."""
    order = np.argsort(pts[:, 0])
    return np.interp(x, pts[order, 0], pts[order, 1])


@load_once
def tessellation() -> np.ndarray:
    """(852, 3) MediaPipe face-mesh triangles (vertex ids < 468), recovered from its edge list."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    adj: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION for c in adj[a] & adj[b]}
    # Three-cliques that are not faces enclose a vertex; their edges each border three cliques instead of two.
    count: dict[tuple[int, int], int] = {}
    for t in tris:
        for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])):
            count[e] = count.get(e, 0) + 1
    faces = [t for t in tris if min(count[(t[0], t[1])], count[(t[1], t[2])], count[(t[0], t[2])]) < 3]
    # Orient them consistently (neighbours run their shared edge in opposite directions), so that whether a
    # triangle faces the camera can be read from the sign of its area in 2D.
    faces = [list(t) for t in sorted(faces)]
    by_edge: dict[frozenset, list[int]] = {}
    for i, t in enumerate(faces):
        for k in range(3):
            by_edge.setdefault(frozenset((t[k], t[(k + 1) % 3])), []).append(i)
    done = {0}
    queue = [0]
    while queue:
        i = queue.pop()
        t = faces[i]
        for k in range(3):
            a, b = t[k], t[(k + 1) % 3]
            for j in by_edge[frozenset((a, b))]:
                if j in done:
                    continue
                u = faces[j]
                if any(u[m] == a and u[(m + 1) % 3] == b for m in range(3)):  # same direction: flip it
                    u[1], u[2] = u[2], u[1]
                done.add(j)
                queue.append(j)
    return np.array(faces, dtype=np.int32)


def _signed_area(pts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    p0, p1, p2 = pts[tris[:, 0]], pts[tris[:, 1]], pts[tris[:, 2]]
    return (p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1])


def _disk(radius: float) -> np.ndarray:
    import cv2

    r = max(int(round(radius)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """A uint8 0/1 mask with every region not connected to the image border set to 1."""
    import cv2

    h, w = mask.shape
    outside = np.pad(1 - mask, 1, constant_values=1).astype(np.uint8)  # the frame around counts as outside
    flood = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(outside, flood, (0, 0), 2)
    return (outside[1:-1, 1:-1] != 2).astype(np.uint8)


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(N,) bool: which points lie inside the closed polygon (even-odd rule)."""
    from matplotlib.path import Path

    return Path(poly).contains_points(pts)


def _eye_outline(upper: tuple[int, ...], lower: tuple[int, ...], corners: tuple[int, int]) -> np.ndarray:
    """Landmark ids around one eye opening, in order: corner, upper lid, other corner, lower lid backwards."""
    outer, inner = corners
    return np.array((outer, *upper, inner, *lower[::-1]))


EYES = (
    # suffix, upper lid, lower lid, (outer, inner) corners, brow (outer..inner upper row, then lower row)
    ("_R", F.EYE_R_UPPER, F.EYE_R_LOWER, F.EYE_R_CORNERS, F.BROW_R),
    ("_L", F.EYE_L_UPPER, F.EYE_L_LOWER, F.EYE_L_CORNERS, F.BROW_L),
)


def _hole_triangles(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles filling the mouth and eye holes of the tessellation, and the iris points left out of the mesh.

    The mouth is a strip pairing the upper and lower inner-lip points, so the lips can part without any triangle
    crossing them. Each eye is the lid outline plus the iris points that are visible inside it; iris points hidden
    under a lid are left out, or moving the iris would drag the lid skin with it.
    """
    from scipy.spatial import Delaunay

    up, lo = F.UPPER_INNER_LIP, F.LOWER_INNER_LIP  # both run corner 78 -> corner 308
    tris = [(up[0], up[1], lo[1])]
    for i in range(1, len(up) - 2):
        tris += [(up[i], up[i + 1], lo[i]), (up[i + 1], lo[i + 1], lo[i])]
    tris.append((up[-2], up[-1], lo[-2]))
    hidden = []
    for _, upper, lower, corners, _ in EYES:
        outline = _eye_outline(upper, lower, corners)
        poly = xy[outline]
        center = poly.mean(axis=0)
        iris = min((F.IRIS_A, F.IRIS_B), key=lambda ids: np.linalg.norm(xy[ids[0]] - center))
        # Shrink the outline a little so iris points sitting on a lid count as hidden.
        inside = _inside(center + 0.85 * (poly - center), xy[np.array(iris)])
        visible = [i for i, ok in zip(iris, inside, strict=True) if ok]
        hidden += [i for i, ok in zip(iris, inside, strict=True) if not ok]
        ids = np.array([*outline, *visible])
        local = Delaunay(xy[ids]).simplices
        keep = _inside(poly, xy[ids][local].mean(axis=1))
        tris += [tuple(ids[t]) for t in local[keep]]
    return np.array(tris, dtype=np.int32), np.array(hidden, dtype=np.int32)


def build_mesh_rig(landmarks: np.ndarray, size: int, person_mask: np.ndarray | None = None) -> MeshRig:
    """Build the mesh rig for a face mesh (478, 3) in a square crop of `size` pixels (a `FaceRig`'s crop).

    Args:
        person_mask: (size, size) float in [0, 1] from `face.segment_person`; without it, everything within a
            head-sized ellipse around the face is taken to be head.
    """
    import cv2

    lm = landmarks.astype(np.float64)
    xy = lm[:, :2]
    up = xy[F.FOREHEAD] - xy[F.CHIN]
    face_h = float(np.linalg.norm(up))
    up /= face_h
    down = -up
    right = np.array([down[1], -down[0]])  # image-right in the face's own frame (tilt-aware)
    origin = (xy[F.MOUTH_CORNER_L] + xy[F.MOUTH_CORNER_R]) / 2
    z_ref = float(lm[:, 2].mean())

    def local(p: np.ndarray) -> np.ndarray:  # (N, 2) pixels -> face-local, units of face height
        rel = p - origin
        return np.stack([rel @ right, rel @ down], axis=1) / face_h

    loc = local(xy)
    depth = (lm[:, 2] - z_ref) / face_h

    # Pivot: between the ears and a little below them (the top of the neck), at their depth.
    ears = lm[[F.EAR_R, F.EAR_L]].mean(axis=0)
    pivot = np.array([*(ears[:2] + 0.15 * face_h * down), ears[2] + 0.05 * face_h])

    # ---- hair, neck and background points, and how much each follows the head ----
    pts_local = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).reshape(-1, 2).astype(np.float64)
    chin_y = loc[F.CHIN, 1]
    below_chin = local(pts_local)[:, 1] - chin_y
    fade = (1.0 - _smoothstep((below_chin - NECK_FADE[0]) / (NECK_FADE[1] - NECK_FADE[0]))).reshape(size, size)
    hull = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(hull, np.round(xy[np.array(F.FACE_OVAL)]).astype(np.int32), 1)
    if person_mask is None:
        center = xy[np.array(F.FACE_OVAL)].mean(axis=0)
        person_mask = np.zeros((size, size), np.float32)
        axes = (round(0.8 * face_h), round(1.6 * face_h))
        cv2.ellipse(person_mask, np.round(center).astype(int).tolist(), axes, 0, 0, 360, 1.0, -1)
        person_mask = cv2.GaussianBlur(person_mask, (0, 0), 0.05 * face_h)
    # The moving layer is the person wherever it moves at all (fading out only where the motion has faded to
    # nothing), with holes in the mask closed, and no wider than the person: the renderer fills the background plate
    # under all of it, so a head that turns shows filled background beside it, never a strip of the photo's wall
    # riding along or a copy of the hair's edge left behind.
    # Hair and hats reach well past the face outline, but not indefinitely: the segmenter sometimes takes a painted
    # landscape for part of the sitter, and that must not swing with the head.
    hull_dist = cv2.distanceTransform(1 - hull, cv2.DIST_L2, 5)
    person = np.maximum(person_mask * (1.0 - _smoothstep((hull_dist / face_h - 0.55) / 0.25)), hull)
    solid = _fill_holes(cv2.morphologyEx((person > 0.5).astype(np.uint8), cv2.MORPH_CLOSE, _disk(0.03 * face_h)))
    solid = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), max(0.004 * face_h, 0.7))
    matte = np.maximum(person, solid)
    matte[matte < MATTE_FLOOR] = 0.0
    # Stray hairs the segmenter missed lie just outside it: a faint fringe, fading out over FRINGE, moves with the
    # head too, and the plate is filled under it, so they are never left behind as a ghost outline.
    outside = cv2.distanceTransform((matte <= 0).astype(np.uint8), cv2.DIST_L2, 5) / face_h
    fringe = FRINGE_ALPHA * np.clip(1.0 - outside / FRINGE, 0.0, 1.0) * (matte <= 0)
    head_alpha = (np.maximum(matte, fringe) * np.clip(fade / 0.1, 0, 1)).astype(np.float32)

    step = max(GRID_STEP * face_h, 10.0)
    n = max(int(np.ceil((size - 1) / step)), 2)
    g = np.linspace(0, size - 1, n + 1)
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    oval = xy[np.array(F.FACE_OVAL)]
    # Drop grid points inside the face or hugging its outline: the landmarks cover that area.
    oval_c = oval.mean(axis=0)
    near_face = _inside(oval_c + (oval - oval_c) * (1 + 0.5 * step / face_h), grid)
    grid = grid[~near_face]
    # Head-following weight: 1 on the head (hair, hat), the neck fade below the chin, fading to 0 over BAND
    # outside the person so the background stays put.
    head = (head_alpha > 0.3).astype(np.uint8) | hull
    dist = cv2.distanceTransform(1 - head, cv2.DIST_L2, 5)
    gi = np.clip(np.round(grid).astype(int), 0, size - 1)
    w_grid = fade[gi[:, 1], gi[:, 0]] * (1.0 - _smoothstep(dist[gi[:, 1], gi[:, 0]] / (BAND * face_h)))
    w_grid[w_grid < 0.02] = 0.0

    n_extra = len(grid)
    # Depth of the extra points: next to the face, the depth of the nearest face-outline point (hair over the
    # forehead, the neck under the chin), easing to the pivot's depth further out (the head's outline turns about
    # it). So a nod or a turn stretches hair and neck smoothly instead of folding the face over them. Static points
    # lie far behind, so their triangles are drawn first.
    grid_loc = local(grid)
    oval_dist = np.linalg.norm(grid[:, None] - oval[None], axis=2)
    nearest = np.argmin(oval_dist, axis=1)
    z_oval = lm[np.array(F.FACE_OVAL)[nearest], 2]
    ease = _smoothstep(oval_dist[np.arange(len(grid)), nearest] / (0.35 * face_h))
    z_follow = z_oval + (pivot[2] - z_oval) * ease
    z_extra = z_follow * w_grid + (pivot[2] + face_h) * (1.0 - w_grid)
    rest = np.concatenate([lm, np.concatenate([grid, z_extra[:, None]], axis=1)])
    head_weight = np.concatenate([np.ones(N_LANDMARKS), w_grid])
    loc_all = np.concatenate([loc, grid_loc])

    # ---- triangles ----
    from scipy.spatial import Delaunay

    holes, hidden_iris = _hole_triangles(xy)
    surface = tessellation()
    if np.sum(np.sign(_signed_area(xy, surface))) < 0:  # most of a face shown to the camera faces it
        surface = surface[:, [0, 2, 1]]
    holes = np.where((_signed_area(xy, holes) < 0)[:, None], holes[:, [0, 2, 1]], holes)  # openings face us
    face_tris = np.concatenate([surface, holes])
    outer_ids = np.concatenate([np.array(F.FACE_OVAL), N_LANDMARKS + np.arange(n_extra)])
    outer = outer_ids[Delaunay(rest[outer_ids, :2]).simplices]
    all_oval = np.isin(outer, F.FACE_OVAL).all(axis=1)
    outer = outer[~(all_oval & _inside(oval, rest[outer, :2].mean(axis=1)))]
    triangles = np.concatenate([face_tris, outer]).astype(np.int32)

    # ---- expression basis ----
    basis = np.zeros((len(CONTROLS), len(rest), 2))

    def put(name: str, d_local: np.ndarray, add: bool = False) -> None:
        d_px = (d_local[:, :1] * right + d_local[:, 1:] * down) * face_h
        if add:
            basis[INDEX[name], : len(d_px)] += d_px
        else:
            basis[INDEX[name], : len(d_px)] = d_px

    _jaw(put, loc, depth, loc_all, chin_y)
    _mouth(put, loc)
    _eyes_and_brows(put, loc)
    _cheeks_nose_gaze(put, loc, hidden_iris)
    basis[:, hidden_iris] = 0.0
    basis[np.linalg.norm(basis, axis=2) < MIN_MOVE_PX] = 0.0
    jaw = basis[INDEX["jawOpen"]]
    neutral = _closing(loc, loc_all, np.stack([jaw @ right, jaw @ down], axis=1) / face_h)
    neutral = (neutral[:, :1] * right + neutral[:, 1:] * down) * face_h
    neutral[np.linalg.norm(neutral, axis=1) < MIN_MOVE_PX] = 0.0
    if np.any(neutral):
        # The lips meet at rest, but every control was built on the photo, where they are apart and so move by
        # different amounts: a frown or a smile would part them. Each inner-lip pair moves as one, except where
        # parting them is the point (the jaw, the funnel's rounded opening).
        pairs = (np.array(F.UPPER_INNER_LIP), np.array(F.LOWER_INNER_LIP))
        together = [i for c, i in INDEX.items() if c not in ("jawOpen", "mouthFunnel")]
        mean = (basis[np.ix_(together, pairs[0])] + basis[np.ix_(together, pairs[1])]) / 2
        basis[np.ix_(together, pairs[0])] = mean
        basis[np.ix_(together, pairs[1])] = mean
        # The closed lips meet along their inner edges, where the photo's pixels blend into the teeth: they take
        # their texture from a little further into each lip (the rest moves the same amount back).
        up_in, lo_in = np.array(F.UPPER_INNER_LIP), np.array(F.LOWER_INNER_LIP)
        gap = np.linalg.norm(xy[lo_in] - xy[up_in], axis=1, keepdims=True)
        rim = np.minimum(LIP_RIM * face_h, 0.3 * gap) * down
        rest[up_in, :2] -= rim
        rest[lo_in, :2] += rim
        neutral[up_in] += rim
        neutral[lo_in] -= rim
    return MeshRig(
        rest=rest,
        basis=basis.astype(np.float32),
        head_weight=head_weight,
        head_alpha=head_alpha,
        pivot=pivot,
        triangles=triangles,
        n_face_triangles=len(face_tris),
        face_height=face_h,
        neutral=neutral.astype(np.float32),
    )


def _closing(loc: np.ndarray, loc_all: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """(P, 2) face-local displacement that closes the photo's parted lips: the rig's rest for `jawOpen = 0`.

    The mandible swings back up (the jaw control run backwards) until the lower lip's centre has closed its share
    of the gap; then every inner-lip pair is brought together exactly (upper lip down by `UPPER_LIP_SHARE`, lower
    lip up by the rest), the outer lip lines move with their inner lines, and the skin nearby follows, fading with
    distance, so a smile with teeth closes into a closed-lipped smile.

    Args:
        loc: (478, 2) landmarks, face-local (units of face height, y down); loc_all: (P, 2) every control point.
        jaw: (P, 2) the jawOpen displacement at 1, face-local.
    """
    up_in, lo_in = np.array(F.UPPER_INNER_LIP), np.array(F.LOWER_INNER_LIP)
    gap = np.clip(loc[lo_in, 1] - loc[up_in, 1], 0.0, None)  # (11,) corner to corner, 0 at the corners
    d = np.zeros_like(loc_all)
    if gap.max() < MIN_LIP_GAP:
        return d
    c = int(np.argmax(gap))
    d -= (1 - UPPER_LIP_SHARE) * gap[c] / max(float(jaw[lo_in[c], 1]), 1e-6) * jaw
    # What each lip point must move by, then the difference from the jaw's motion spread over the skin nearby.
    want = np.zeros((len(loc), 2))
    meet = loc[up_in] + UPPER_LIP_SHARE * (loc[lo_in] - loc[up_in])  # each pair meets here, exactly
    want[up_in], want[lo_in] = meet - loc[up_in], meet - loc[lo_in]
    upper_out, lower_out = np.array(F.UPPER_OUTER_LIP), np.array(F.LOWER_OUTER_LIP)
    want[upper_out, 1] = _interp_line(np.stack([loc[up_in, 0], want[up_in, 1]], 1), loc[upper_out, 0])
    want[lower_out, 1] = _interp_line(np.stack([loc[lo_in, 0], want[lo_in, 1]], 1), loc[lower_out, 0])
    lips = np.unique(np.concatenate([up_in, lo_in, upper_out, lower_out]))
    residual = want[lips] - d[lips]
    dist = np.linalg.norm(loc_all[:, None] - loc[None, lips], axis=2)  # (P, L)
    near = np.exp(-((dist / 0.025) ** 2)) + 1e-12
    spread = (near @ residual) / near.sum(axis=1, keepdims=True)
    d += spread * np.exp(-((dist.min(axis=1) / 0.06) ** 2))[:, None]
    d[lips] = want[lips]
    return d


def _jaw(put, loc, depth, loc_all, chin_y) -> None:
    """jawOpen: the mandible rotates about hinges below the ears (in 3D, using the mesh depth)."""
    up_in, lo_in = np.array(F.UPPER_INNER_LIP), np.array(F.LOWER_INNER_LIP)
    mid = (loc[up_in] + loc[lo_in]) / 2  # the line where the lips meet, corner to corner
    corner_y = mid[[0, -1], 1].mean()
    x_span = np.abs(mid[[0, -1], 0]).max()
    # Which points ride on the mandible: below the lip line, fading out towards the cheeks and ears.
    line_y = np.where(np.abs(loc_all[:, 0]) < x_span, _interp_line(mid, loc_all[:, 0]), corner_y)
    below = _smoothstep((loc_all[:, 1] - line_y) / 0.05 + 0.35)
    side = 1.0 - 0.65 * _smoothstep((np.abs(loc_all[:, 0]) - 0.22) / 0.3)
    w = below * side
    n = len(loc)
    # Neck points: the skin under the chin is pulled along, less the further down it is.
    under = np.clip(loc_all[n:, 1] - chin_y, 0, None)
    w[n:] *= np.exp(-((under / 0.3) ** 2)) * (np.abs(loc_all[n:, 0]) < 0.6)
    # The lower lip drops most at the centre and less towards the corners, so the opening is rounded, not a box.
    t = np.abs(loc[lo_in[1:-1], 0]) / max(x_span, 1e-6)
    w[lo_in[1:-1]] = 1.0 - 0.45 * t**3
    w[up_in[1:-1]] = 0.0
    w[[F.MOUTH_CORNER_L, F.MOUTH_CORNER_R, up_in[0], up_in[-1]]] = 0.3
    hinge_y = loc[[F.EAR_R, F.EAR_L], 1].mean() + 0.05
    hinge_z = depth[[F.EAR_R, F.EAR_L]].mean() + 0.05
    z = np.concatenate([depth, np.full(len(loc_all) - n, depth[F.CHIN] + 0.15)])
    ry, rz = loc_all[:, 1] - hinge_y, z - hinge_z
    c, s = np.cos(JAW_MAX_RAD), np.sin(JAW_MAX_RAD)
    d = np.zeros_like(loc_all)
    d[:, 1] = w * (ry * (c - 1) - rz * s)  # chin (in front of and below the hinge) swings down and back
    d[:, 0] = -0.04 * w * loc_all[:, 0]  # the lower face narrows a little as it opens
    upper_lip = np.array(F.UPPER_INNER_LIP[1:-1] + F.UPPER_OUTER_LIP[1:-1])
    d[upper_lip, 1] -= 0.008  # the upper lip lifts a touch
    put("jawOpen", d)


def _mouth(put, loc) -> None:
    """Lip corners (smile, frown, stretch), pucker, funnel and press."""
    n = len(loc)
    for suffix, corner, sign in (("_L", F.MOUTH_CORNER_L, 1.0), ("_R", F.MOUTH_CORNER_R, -1.0)):
        c = loc[corner]
        w = _gauss(loc, c, 0.085) * _smoothstep(0.5 + sign * loc[:, 0] / 0.08)
        put("mouthSmile" + suffix, w[:, None] * np.array([sign * 0.04, -0.045]))  # up and out (zygomaticus)
        put("mouthFrown" + suffix, w[:, None] * np.array([sign * 0.008, 0.04]))  # down (depressor anguli oris)
        put("mouthStretch" + suffix, w[:, None] * np.array([sign * 0.045, 0.012]))  # sideways (risorius)

    lips = np.array(sorted(set(F.LIPS_INNER + F.UPPER_OUTER_LIP + F.LOWER_OUTER_LIP)))
    # Skin around the lips is pulled along with them, fading with distance from the nearest lip point, and beyond
    # the corners as far as the corners move: a sharp falloff there would stretch the corners into streaks.
    d_lips = np.min(np.linalg.norm(loc[:, None] - loc[None, lips], axis=2), axis=1)
    x_corner = np.abs(loc[[F.MOUTH_CORNER_L, F.MOUTH_CORNER_R], 0]).max()
    w_mouth = np.exp(-((d_lips / 0.07) ** 2))
    gather = np.clip(loc[:, 0], -x_corner, x_corner) * w_mouth
    upper_out, lower_out = np.array(F.UPPER_OUTER_LIP[1:-1]), np.array(F.LOWER_OUTER_LIP[1:-1])
    d = np.zeros((n, 2))
    d[:, 0] = -0.3 * gather  # pucker: the lips gather towards the centre ...
    d[upper_out, 1] -= 0.008  # ... and push forward, so they look fuller
    d[lower_out, 1] += 0.008
    put("mouthPucker", d)
    d = np.zeros((n, 2))
    d[:, 0] = -0.22 * gather  # funnel: gathered lips part into a rounded "oo"
    inner_lo, inner_up = np.array(F.LOWER_INNER_LIP[1:-1]), np.array(F.UPPER_INNER_LIP[1:-1])
    bulge = np.sin(np.linspace(0, np.pi, len(inner_lo) + 2)[1:-1])
    d[inner_lo, 1] += 0.035 * bulge
    d[inner_up, 1] -= 0.015 * bulge
    d[lower_out, 1] += 0.015
    put("mouthFunnel", d)
    d = np.zeros((n, 2))
    d[upper_out, 1] = 0.01  # press: the lips flatten and thin
    d[lower_out, 1] = -0.012
    put("mouthPress", d)


def _lid_and_brow_lines(loc, upper, lower, corners, brow):
    """For points above one eye: v in [0, 1] from the upper-lid margin (0) to the brow (1), and a horizontal
    weight that is 1 across the eye and brow and fades beyond."""
    lid = loc[np.array((corners[0], *upper, corners[1]))]
    brow_line = (loc[np.array(brow[:5])] + loc[np.array(brow[5:])]) / 2  # mid-line of the brow, outer to inner
    x = loc[:, 0]
    y_lid = _interp_line(lid, x)
    y_brow = _interp_line(brow_line, x)
    v = (y_lid - loc[:, 1]) / np.maximum(y_lid - y_brow, 0.02)
    x0 = min(lid[:, 0].min(), brow_line[:, 0].min())
    x1 = max(lid[:, 0].max(), brow_line[:, 0].max())
    horiz = 1.0 - _smoothstep((np.maximum(x0 - x, x - x1)) / 0.06)
    return v, horiz, brow_line


def _eyes_and_brows(put, loc) -> None:
    """Blinks close the upper lid onto the lower one, the lid skin following up to the brow; brows move with the
    skin between lid and brow, never the lid margin itself."""
    n = len(loc)
    for suffix, upper, lower, corners, brow in EYES:
        up_ids, lo_ids = np.array(upper), np.array(lower)
        v, horiz, brow_line = _lid_and_brow_lines(loc, upper, lower, corners, brow)
        y_up, y_lo = loc[up_ids, 1], _interp_line(loc[lo_ids], loc[up_ids, 0])
        gap = y_lo - y_up
        # Blink: the lids meet a little above the lower lid (it rises a touch, too).
        meet = y_lo - 0.12 * gap
        lid_drop = np.interp(loc[:, 0], np.sort(loc[up_ids, 0]), (meet - y_up)[np.argsort(loc[up_ids, 0])])
        lid_drop *= horiz
        d = np.zeros((n, 2))
        lid_zone = (v > 0) & (v < 1.2)
        d[lid_zone, 1] = lid_drop[lid_zone] * (1 - np.clip(v[lid_zone], 0, 1)) ** 1.5
        d[up_ids, 1] = meet - y_up
        lo_rise = np.interp(loc[lo_ids, 0], np.sort(loc[up_ids, 0]), (0.12 * gap)[np.argsort(loc[up_ids, 0])])
        d[lo_ids, 1] = -lo_rise
        # The iris points inside this eye are squeezed onto the closed lid line, or the lid would fold over them.
        center = loc[np.concatenate([up_ids, lo_ids])].mean(axis=0)
        iris = np.array(min((F.IRIS_A, F.IRIS_B), key=lambda ids: np.linalg.norm(loc[ids[0]] - center)))
        d[iris, 1] = np.interp(loc[iris, 0], np.sort(loc[up_ids, 0]), meet[np.argsort(loc[up_ids, 0])]) - loc[iris, 1]
        put("eyeBlink" + suffix, d)

        # Wide: the upper lid lifts, the skin above folds up into the crease.
        shape = np.sin(np.linspace(0.15, np.pi - 0.15, len(up_ids)))
        d = np.zeros((n, 2))
        d[lid_zone, 1] = -0.02 * horiz[lid_zone] * (1 - np.clip(v[lid_zone], 0, 1))
        d[up_ids, 1] = -0.022 * shape
        put("eyeWide" + suffix, d)
        # Squint: the lower lid and the cheek under it rise; the upper lid drops slightly.
        d = np.zeros((n, 2))
        d[:, 1] = -0.012 * _gauss(loc, center + [0, 0.05], 0.045)
        d[lo_ids, 1] = -0.016 * np.sin(np.linspace(0.2, np.pi - 0.2, len(lo_ids)))
        d[up_ids, 1] = 0.004 * shape
        put("eyeSquint" + suffix, d)

        # Brows: the skin from the lid margin (still) to the brow (moves fully), the forehead above partly.
        w_v = np.where(v <= 1, _smoothstep(v), np.exp(-(((v - 1) / 1.5) ** 2))) * horiz
        inner, outer = brow_line[-1], brow_line[0]
        toward_inner = _smoothstep((loc[:, 0] - outer[0]) / (inner[0] - outer[0]))
        d = np.zeros((n, 2))
        d[:, 1] = 0.035 * w_v
        d[:, 0] = 0.012 * np.sign(-outer[0]) * w_v * toward_inner  # and towards the nose (corrugator)
        put("browDown" + suffix, d)
        d = np.zeros((n, 2))
        d[:, 1] = -0.045 * w_v * (1 - toward_inner) ** 1.5
        put("browOuterUp" + suffix, d)
        d = np.zeros((n, 2))
        d[:, 1] = -0.045 * w_v * toward_inner**1.5
        put("browInnerUp", d, add=True)


def _cheeks_nose_gaze(put, loc, hidden_iris) -> None:
    n = len(loc)
    d = np.zeros((n, 2))
    for cheek in (50, 280):
        d[:, 1] -= 0.03 * _gauss(loc, loc[cheek], 0.08)
    put("cheekRaise", d)
    nose_wings = np.array([48, 278, 129, 358, 64, 294])
    d = np.zeros((n, 2))
    d[:, 1] = -0.022 * np.max(np.stack([_gauss(loc, loc[i], 0.035) for i in nose_wings]), axis=0)
    d[np.array(F.UPPER_OUTER_LIP[2:-2]), 1] -= 0.008  # the upper lip lifts with the nose wings (AU9/10)
    put("noseSneer", d)
    # Gaze: the visible iris points shift within the eye.
    eye_w = np.linalg.norm(loc[F.EYE_R_CORNERS[0]] - loc[F.EYE_R_CORNERS[1]])
    irises = np.setdiff1d(np.array(F.IRIS_A + F.IRIS_B), hidden_iris)
    d = np.zeros((n, 2))
    d[irises, 0] = 0.13 * eye_w
    put("gazeX", d)
    d = np.zeros((n, 2))
    d[irises, 1] = 0.07 * eye_w
    put("gazeY", d)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation in image coordinates (x right, y down, z into the image): yaw about y, pitch x, roll z."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_points(
    mesh_rig: MeshRig,
    expression: np.ndarray,
    pose: np.ndarray,
    ids: np.ndarray | None = None,
    photo: bool = False,
) -> np.ndarray:
    """Control points for one frame.

    Args:
        expression: (K,) control values.
        pose: (6,) yaw, pitch, roll (radians), tx, ty (fraction of face height), scale.
        ids: which points (default: all).
        photo: start from the photo's own expression instead of the rig's rest (lips as the photo has them).
    Returns:
        (P, 3) positions: x, y in image pixels and depth (pixels, larger is further away).
    """
    sel = slice(None) if ids is None else ids
    pts = mesh_rig.rest[sel].copy()
    if mesh_rig.neutral is not None and not photo:
        pts[:, :2] += mesh_rig.neutral[sel]
    # einsum, not a BLAS call: a few thousand multiply-adds are not worth waking a thread pool for.
    pts[:, :2] += np.einsum("k,kpc->pc", np.asarray(expression, dtype=np.float32), mesh_rig.basis[:, sel])
    rot = rotation_matrix(pose[POSE_INDEX["yaw"]], pose[POSE_INDEX["pitch"]], pose[POSE_INDEX["roll"]])
    moved = (pts - mesh_rig.pivot) @ rot.T * pose[POSE_INDEX["scale"]] + mesh_rig.pivot
    moved[:, 0] += pose[POSE_INDEX["tx"]] * mesh_rig.face_height
    moved[:, 1] += pose[POSE_INDEX["ty"]] * mesh_rig.face_height
    w = mesh_rig.head_weight[sel, None]
    return pts * (1 - w) + moved * w
