"""Compiled per-pixel kernels of the CPU warp: where a frame can change, the remap maps there and the head-over-plate
composite.

Compiled with numba on first use and cached on disk (see requirements.txt); every kernel releases the GIL, so two
portraits render side by side in threads. Each pixel's results are written with one store per array (packed where
needed): numba vectorises those loops, while interleaved small-integer stores (`m[k, 0] = ...; m[k, 1] = ...`) run
several times slower. Arrays are indexed, not unpacked or sliced into copies, inside the kernels: numba takes seconds
to compile those.
"""

from __future__ import annotations

import math

import numba
import numpy as np

SUBPIXEL = 32  # `cv2.remap` fixed-point maps: positions to 1/32 pixel (cv2.INTER_TAB_SIZE)


@numba.njit(cache=True, nogil=True)
def rasterize_maps(
    xy: np.ndarray,
    frac: np.ndarray,
    pts: np.ndarray,
    rest: np.ndarray,
    tris: np.ndarray,
    order: np.ndarray,
    cull: np.ndarray,
    spans: np.ndarray,
    x0: int,
    y0: int,
) -> None:
    """Fixed-point `cv2.remap` maps of a piecewise-affine warp: triangles painted in `order` (later ones win), each
    pixel given the exact source position of the triangle over it, the identity where none lies; only the pixels
    of `spans` are written.

    Args:
        xy: (h, w) int32, the CV_16SC2 map viewed as one int32 per pixel (little-endian: x low, y high): the integer
            source position; frac: (h, w) uint16, its 1/32 fractions (y * 32 + x). Pixel (i, j) is (x0 + j, y0 + i).
        pts: (P, 2) float64 the mesh's points in the frame; rest: (P, 2) the same points in the source image.
        tris: (M, 3) point ids of the triangles; order: (N,) triangles to draw, far to near.
        cull: (M,) bool: the triangle is hidden while it faces away from the camera (negative area in the frame).
        spans: (B, 4) int64 boxes (x0, y0, x1, y1) in the frame, within the maps: bands of rows of equal height from
            y0 down, the last one possibly shorter; a band may be empty (x0 == x1).
    """
    h, w = xy.shape
    clip_lo, clip_hi = np.zeros(h, np.int64), np.full(h, -1, np.int64)  # per row, the columns to draw (box pixels)
    for k in range(len(spans)):
        bx0, by0, bx1, by1 = spans[k, 0], spans[k, 1], spans[k, 2], spans[k, 3]
        for y in range(by0, by1):
            clip_lo[y - y0], clip_hi[y - y0] = bx0 - x0, bx1 - x0 - 1
            row, frow = xy[y - y0], frac[y - y0]
            for x in range(bx0, bx1):
                row[x - x0] = (y << 16) | (x & 0xFFFF)
                frow[x - x0] = 0
    for t in order:
        p0, p1, p2 = tris[t, 0], tris[t, 1], tris[t, 2]
        ax, ay = pts[p0, 0], pts[p0, 1]
        bx, by = pts[p1, 0], pts[p1, 1]
        cx, cy = pts[p2, 0], pts[p2, 1]
        det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        if abs(det) < 1e-6 or (cull[t] and det <= 0):  # collapsed, or a face triangle turned away
            continue
        i0 = max(int(math.ceil(min(ay, by, cy))) - y0, 0)
        i1 = min(int(math.floor(max(ay, by, cy))) - y0, h - 1)
        xlo = max(int(math.ceil(min(ax, bx, cx))) - x0, 0)
        xhi = min(int(math.floor(max(ax, bx, cx))) - x0, w - 1)
        if i0 > i1 or xlo > xhi:
            continue
        # The affine map dst -> src of this triangle, in box pixels: src = [c0 c1 c2; c3 c4 c5] @ [j, i, 1].
        ex1, ey1, ex2, ey2 = bx - ax, by - ay, cx - ax, cy - ay
        fx1, fy1 = rest[p1, 0] - rest[p0, 0], rest[p1, 1] - rest[p0, 1]
        fx2, fy2 = rest[p2, 0] - rest[p0, 0], rest[p2, 1] - rest[p0, 1]
        c0 = (fx1 * ey2 - fx2 * ey1) / det
        c1 = (fx2 * ex1 - fx1 * ex2) / det
        c3 = (fy1 * ey2 - fy2 * ey1) / det
        c4 = (fy2 * ex1 - fy1 * ex2) / det
        c2 = rest[p0, 0] - c0 * (ax - x0) - c1 * (ay - y0)
        c5 = rest[p0, 1] - c3 * (ax - x0) - c4 * (ay - y0)
        # Edges as half-planes a_k x + b_k y + d_k >= eps (positive inside, box pixels). Pixels exactly on a shared
        # edge belong to both triangles (the small tolerance), so there are no cracks; the later triangle wins them.
        sgn = 1.0 if det > 0 else -1.0
        eps = -1e-6 * abs(det)
        ax, bx, cx, ay, by, cy = ax - x0, bx - x0, cx - x0, ay - y0, by - y0, cy - y0
        ea0, eb0, ed0 = (by - cy) * sgn, (cx - bx) * sgn, (bx * cy - cx * by) * sgn - eps
        ea1, eb1, ed1 = (cy - ay) * sgn, (ax - cx) * sgn, (cx * ay - ax * cy) * sgn - eps
        ea2, eb2, ed2 = (ay - by) * sgn, (bx - ax) * sgn, (ax * by - bx * ay) * sgn - eps
        # Per row, each edge bounds x from one side: x >= -v / a (a > 0) or x <= -v / a (a < 0), v = b i + d.
        r0 = 1.0 / ea0 if ea0 != 0 else 0.0
        r1 = 1.0 / ea1 if ea1 != 0 else 0.0
        r2 = 1.0 / ea2 if ea2 != 0 else 0.0
        for i in range(i0, i1 + 1):
            lo, hi = float(max(xlo, clip_lo[i])), float(min(xhi, clip_hi[i]))
            v0, v1, v2 = -(eb0 * i + ed0), -(eb1 * i + ed1), -(eb2 * i + ed2)
            if ea0 > 0:
                lo = max(lo, v0 * r0)
            elif ea0 < 0:
                hi = min(hi, v0 * r0)
            elif v0 > 0:
                continue
            if ea1 > 0:
                lo = max(lo, v1 * r1)
            elif ea1 < 0:
                hi = min(hi, v1 * r1)
            elif v1 > 0:
                continue
            if ea2 > 0:
                lo = max(lo, v2 * r2)
            elif ea2 < 0:
                hi = min(hi, v2 * r2)
            elif v2 > 0:
                continue
            ja, jb = int(math.ceil(lo)), int(math.floor(hi))
            if ja > jb:
                continue
            sx, sy = c1 * i + c2, c4 * i + c5
            for j in range(ja, jb + 1):
                qx = np.int32(np.rint((c0 * j + sx) * 32.0))
                qy = np.int32(np.rint((c3 * j + sy) * 32.0))
                xy[i, j] = ((qy >> 5) << 16) | ((qx >> 5) & 0xFFFF)
                frac[i, j] = np.uint16(((qy & 31) << 5) | (qx & 31))


@numba.njit(cache=True, nogil=True)
def composite(out: np.ndarray, layer: np.ndarray, plate: np.ndarray, spans: np.ndarray, x0: int, y0: int) -> None:
    """out = layer + plate x (1 - alpha) over `spans`, rounded as `cv2.multiply(..., scale=1/255)` and saturated as
    `cv2.add`.

    Args:
        out: (S, S, 3) uint8 frame and plate: (S, S, 3) uint8 background, both C-contiguous.
        layer: (h, w, 4) uint8 C-contiguous premultiplied RGBA, its top-left pixel at (x0, y0) in the frame.
        spans: (B, 4) int64 boxes (x0, y0, x1, y1) in the frame, within the layer: where to composite.
    """
    for k in range(len(spans)):
        bx0, by0, bx1, by1 = spans[k, 0], spans[k, 1], spans[k, 2], spans[k, 3]
        for y in range(by0, by1):
            o, p, a = out[y, bx0:bx1].ravel(), plate[y, bx0:bx1].ravel(), layer[y - y0, bx0 - x0 : bx1 - x0].ravel()
            for k in range(bx1 - bx0):
                behind = 255 - np.int32(a[4 * k + 3])
                for c in range(3):
                    t = np.int32(p[3 * k + c]) * behind + 128  # t / 255 rounded, exactly, for t < 65536
                    o[3 * k + c] = min(np.int32(a[4 * k + c]) + ((t + (t >> 8)) >> 8), 255)


@numba.njit(cache=True, nogil=True)
def layer_spans(
    row_lo: np.ndarray, row_hi: np.ndarray, box: np.ndarray, shift_lo: np.ndarray, shift_hi: np.ndarray, height: int
) -> np.ndarray:
    """Where a frame can differ from the photo, as bands of rows: (B, 4) int64 boxes (x0, y0, x1, y1).

    A pixel differs only where the layer was (its row's extent in the photo) or where its source lies in the layer.
    Its shift (frame minus source) lies within [shift_lo, shift_hi], so its source row is within that range of it,
    and it lies within that range of the extent of its source row; 2 pixels more for the bilinear taps.

    Args:
        row_lo, row_hi: (S,) int64 the layer's first and one-past-last column in each row of the photo (lo >= hi:
            none); box: (4,) int64 (x0, y0, x1, y1), the box around all of it this frame.
        shift_lo, shift_hi: (2,) float64, the smallest and largest x, y shift of the frame's points (0 included).
    """
    x0, y0, x1, y1 = box[0], box[1], box[2], box[3]
    n = (y1 - y0 + height - 1) // height
    spans = np.empty((n, 4), np.int64)
    size = len(row_lo)
    for k in range(n):
        by0, by1 = y0 + k * height, min(y0 + (k + 1) * height, y1)
        r0 = max(by0 - int(math.ceil(shift_hi[1])) - 2, 0)
        r1 = min(by1 - int(math.floor(shift_lo[1])) + 2, size)
        lo, hi = size, 0
        for r in range(r0, r1):
            if row_lo[r] < row_hi[r]:
                lo, hi = min(lo, row_lo[r]), max(hi, row_hi[r])
        bx0 = min(max(lo + int(math.floor(shift_lo[0])) - 2, x0), x1)
        bx1 = min(max(hi + int(math.ceil(shift_hi[0])) + 2, bx0), x1)
        spans[k, 0], spans[k, 1], spans[k, 2], spans[k, 3] = bx0, by0, bx1, by1
    return spans
