"""A compiled triangle rasteriser for the mesh warp: writes each sample's source position directly.

Compiled with numba (a dependency of librosa, so already installed) on first use and cached on disk. Doing this in
one loop replaces a Python loop of `cv2.fillConvexPoly` calls, a triangle-index image and a gather of per-triangle
maps, about 2 ms of a 5 ms frame.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def rasterize_source(
    src: np.ndarray, dst: np.ndarray, coef: np.ndarray, order: np.ndarray, ox: float, oy: float, step: int
) -> None:
    """Paint triangles in `order` (later ones win) into `src`, the source position of each sample of a grid.

    Args:
        src: (ny, nx, 2) float32, kept where no triangle lies; sample (i, j) is at pixel (ox + step j, oy + step i).
        dst: (M, 3, 2) float64 triangle corners in pixels.
        coef: (M, 6) float64 affine map of each triangle: src = [c0 c1 c2; c3 c4 c5] @ [x, y, 1].
        order: (N,) int64 triangles to draw, far to near.
    """
    ny, nx = src.shape[0], src.shape[1]
    for t in order:
        ax, ay = dst[t, 0, 0], dst[t, 0, 1]
        bx, by = dst[t, 1, 0], dst[t, 1, 1]
        cx, cy = dst[t, 2, 0], dst[t, 2, 1]
        area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        if abs(area) < 1e-9:
            continue
        sgn = 1.0 if area > 0 else -1.0
        eps = -1e-6 * abs(area)  # samples exactly on a shared edge belong to both triangles: no cracks
        j0 = max(int(np.ceil((min(ax, bx, cx) - ox) / step)), 0)
        j1 = min(int(np.floor((max(ax, bx, cx) - ox) / step)), nx - 1)
        i0 = max(int(np.ceil((min(ay, by, cy) - oy) / step)), 0)
        i1 = min(int(np.floor((max(ay, by, cy) - oy) / step)), ny - 1)
        c0, c1, c2, c3, c4, c5 = coef[t, 0], coef[t, 1], coef[t, 2], coef[t, 3], coef[t, 4], coef[t, 5]
        for i in range(i0, i1 + 1):
            y = oy + step * i
            for j in range(j0, j1 + 1):
                x = ox + step * j
                w0 = ((bx - x) * (cy - y) - (cx - x) * (by - y)) * sgn
                w1 = ((cx - x) * (ay - y) - (ax - x) * (cy - y)) * sgn
                w2 = ((ax - x) * (by - y) - (bx - x) * (ay - y)) * sgn
                if w0 >= eps and w1 >= eps and w2 >= eps:
                    src[i, j, 0] = c0 * x + c1 * y + c2
                    src[i, j, 1] = c3 * x + c4 * y + c5
