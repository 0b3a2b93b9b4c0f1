"""Compiled per-pixel painting of the CPU renderer: the mouth's interior (cavity, tongue, teeth) and blending a
painted patch into the frame.

One pass per pixel instead of some hundred NumPy operations on a patch of a few thousand pixels, which cost more in
call overhead than in arithmetic. The shapes and shading are described in `CpuRenderer._paint_mouth`. Compiled with
numba on first use, cached on disk, and free of the GIL (two portraits render side by side in threads).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Tooth boundaries across the upper arch, as a fraction of the half-width of the mouth (incisors wider, foreshortened
# towards the corners), and the lower arch.
UPPER_GAPS = np.array([0.0, -0.25, 0.25, -0.46, 0.46, -0.63, 0.63, -0.76, 0.76])
LOWER_GAPS = np.array([0.0, -0.16, 0.16, -0.32, 0.32, -0.47, 0.47])
UPPER_INCISOR, LOWER_INCISOR = 0.25, 0.16  # the central incisors' widths: the first steps between the gaps above
U_MAX, U_STEPS = 1.2, 480  # tooth profiles are functions of u alone: tabulated on [-1.2, 1.2], interpolated per pixel
DEEP, WALL, TONGUE, TEETH = range(4)  # rows of the colour table


@numba.njit(cache=True, nogil=True)
def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


@numba.njit(cache=True, nogil=True)
def _recede(au: float) -> float:
    """Brightness of teeth by |u| across the mouth: the front teeth lit, the side teeth turning away into the
    mouth's shadow (painted teeth that stay bright to the corners read as dentures)."""
    return 1.0 - 0.7 * _smoothstep((au - 0.2) / 0.65)


@numba.njit(cache=True, nogil=True)
def _profiles(gaps: np.ndarray, incisor: float, half: float, gap_px: float, scallop_px: float) -> np.ndarray:
    """(2, U_STEPS + 1) over u in [-U_MAX, U_MAX]: the brightness factor across the teeth (each tooth rounded, lit in
    its middle, and a thin dark line between neighbours) and the pixels by which the biting edge rounds off next to
    each gap."""
    width = max(incisor * half, 2.0)  # the central incisor, px
    out = np.empty((2, U_STEPS + 1))
    for k in range(U_STEPS + 1):
        u = -U_MAX + 2 * U_MAX * k / U_STEPS
        near = np.inf
        for g in gaps:
            near = min(near, abs(u - g))
        d = near * half  # pixels to the nearest gap
        rounded = 0.9 + 0.1 * math.sqrt(min(d / (0.5 * width), 1.0))
        out[0, k] = rounded * (1.0 - 0.16 * math.exp(-((d / gap_px) ** 2)))
        out[1, k] = scallop_px * math.exp(-((near * half / (2.5 * scallop_px)) ** 2))
    return out


@numba.njit(cache=True, nogil=True)
def _at(table: np.ndarray, u: float) -> float:
    t = min(max((u + U_MAX) * (U_STEPS / (2 * U_MAX)), 0.0), float(U_STEPS))
    k = min(int(t), U_STEPS - 1)
    return table[k] + (table[k + 1] - table[k]) * (t - k)


@numba.njit(cache=True, nogil=True)
def _interp(x: float, xp: np.ndarray, fp: np.ndarray) -> float:
    """np.interp for one x over a few sorted knots (numba's np.interp allocates per call)."""
    if x <= xp[0]:
        return fp[0]
    for k in range(1, len(xp)):
        if x <= xp[k]:
            if xp[k] == xp[k - 1]:
                return fp[k]
            return fp[k - 1] + (fp[k] - fp[k - 1]) * (x - xp[k - 1]) / (xp[k] - xp[k - 1])
    return fp[-1]


@numba.njit(cache=True, nogil=True)
def _by_u(p: np.ndarray, cx: float, cy: float, axx: float, axy: float, half: float):
    """Points of a lip line `p` (N, 2) along the mouth: their u, sorted, and the order that sorts them. An insertion
    sort (numba compiles it in a fraction of np.argsort's time, and the few points come nearly in order)."""
    n = len(p)
    us, order = np.empty(n), np.empty(n, np.int64)
    for k in range(n):
        u = ((p[k, 0] - cx) * axx + (p[k, 1] - cy) * axy) / half
        m = k
        while m > 0 and us[m - 1] > u:
            us[m], order[m] = us[m - 1], order[m - 1]
            m -= 1
        us[m], order[m] = u, k
    return us, order


@numba.njit(cache=True, nogil=True)
def _knots(p: np.ndarray, cx: float, cy: float, axx: float, axy: float, half: float):
    """A lip line (N, 2) in mouth coordinates, sorted by u: (N,) u and (N,) v knots."""
    u, order = _by_u(p, cx, cy, axx, axy, half)
    v = np.empty(len(p))
    for k in range(len(p)):
        v[k] = -(p[order[k], 0] - cx) * axy + (p[order[k], 1] - cy) * axx
    return u, v


@numba.njit(cache=True, nogil=True)
def mouth_interior(
    color: np.ndarray,
    x0: int,
    y0: int,
    lines: np.ndarray,
    colors: np.ndarray,
    face_h: float,
    gap: float,
    upper_teeth: bool,
) -> None:
    """Paint the open mouth's interior colour over a patch, before its blur and grain.

    Geometry is in mouth coordinates: u across the mouth (-1 at one corner, 1 at the other), v down from the corner
    line, pixels.

    Args:
        color: (h, w, 3) float32, written: the patch whose top-left pixel is (x0, y0) in the frame.
        lines: (3, N, 2) pixels, corner to corner: the upper inner lip, the lower inner lip, and the upper inner lip
            at rest under the current head pose (where the upper teeth hang from).
        colors: (4, 3) RGB: the cavity's back, its walls, the tongue, the teeth (rows DEEP, WALL, TONGUE, TEETH).
        face_h: face height, pixels; gap: the largest lip-to-lip distance, pixels.
        upper_teeth: paint the upper teeth (False where the photo's own interior will show instead).
    """
    up, lo = lines[0], lines[1]
    cx, cy = (up[0, 0] + up[-1, 0]) / 2, (up[0, 1] + up[-1, 1]) / 2
    half = max(math.hypot(up[-1, 0] - up[0, 0], up[-1, 1] - up[0, 1]) / 2, 1.0)
    axx, axy = (up[-1, 0] - up[0, 0]) / (2 * half), (up[-1, 1] - up[0, 1]) / (2 * half)
    up_u, up_v = _knots(up, cx, cy, axx, axy, half)
    lo_u, lo_v = _knots(lo, cx, cy, axx, axy, half)
    rest_u, rest_v = _knots(lines[2], cx, cy, axx, axy, half)
    # The lip-to-lip distance at the middle of the mouth (by each upper point's u), for the tongue's size.
    pair_u, order = _by_u(up, cx, cy, axx, axy, half)
    pair_gap = np.empty(len(up))
    for k in range(len(up)):
        pair_gap[k] = math.hypot(lo[order[k], 0] - up[order[k], 0], lo[order[k], 1] - up[order[k], 1])
    gap_c = max(_interp(0.0, pair_u, pair_gap), 1.0)

    px_scale = face_h / 200.0  # feature sizes below are for a 200 px face
    show_tongue = min(max((gap - 0.05 * face_h) / (0.06 * face_h), 0.0), 1.0)
    show_lower = min(max((gap - 0.11 * face_h) / (0.05 * face_h), 0.0), 1.0)
    lower = _profiles(LOWER_GAPS, LOWER_INCISOR, half, 0.8 * px_scale, 0.6 * px_scale)
    upper = _profiles(UPPER_GAPS, UPPER_INCISOR, half, 0.7 * px_scale, 0.8 * px_scale)
    length = min(0.17 * half, 0.034 * face_h)
    rgb = np.empty(3)
    for i in range(color.shape[0]):
        for j in range(color.shape[1]):
            px, py = x0 + j - cx, y0 + i - cy
            u = (px * axx + py * axy) / half
            v = -px * axy + py * axx
            v_up, v_lo = _interp(u, up_u, up_v), _interp(u, lo_u, lo_v)
            depth = min(max((v - v_up) / max(v_lo - v_up, 1.0), 0.0), 1.0)  # 0 at the upper lip, 1 at the lower
            au = abs(u)
            # Cavity: darkest at the back, redder towards the inner cheeks and the floor.
            wall = min(max(au * au * 0.75 + 0.15 * depth, 0.0), 1.0)
            for c in range(3):
                rgb[c] = colors[DEEP, c] + (colors[WALL, c] - colors[DEEP, c]) * wall
            # Tongue: a rounded mound on the floor, lit on top, once the mouth is open enough to see it.
            ell = (u / 0.62) ** 2 + ((v - (v_lo - 0.1 * gap_c)) / (0.45 * gap_c)) ** 2
            tongue = (1 - _smoothstep((ell - 0.6) / 0.6)) * show_tongue * 0.85
            lit = 0.35 + 0.5 * min(max(1 - (v_lo - v) / (0.55 * gap_c), 0.0), 1.0) * (1 - 0.6 * au)
            for c in range(3):
                rgb[c] += (colors[TONGUE, c] * lit - rgb[c]) * tongue
            # Lower teeth: on the jaw, just above the lower lip, seen when the mouth is wide open; in the shadow of
            # the upper teeth and the tongue, well below the upper teeth's brightness. Shaded teeth go towards the
            # cavity wall, not grey: the light that reaches them bounced off the cheeks and tongue.
            if show_lower > 0:
                edge = v_lo - 0.022 * face_h * (1 - 0.5 * u * u) + _at(lower[1], u)
                teeth = _smoothstep((v - edge) + 0.5) * (1 - _smoothstep((au - 0.5) / 0.15)) * show_lower
                shade = 0.62 * _recede(au) * _at(lower[0], u)
                for c in range(3):
                    tooth = colors[WALL, c] + (colors[TEETH, c] - colors[WALL, c]) * shade
                    rgb[c] += (tooth - rgb[c]) * teeth
            # Upper teeth: hang from the rest line of the upper lip; shadowed under the lip and towards the corners.
            # What shows below the relaxed upper lip is in proportion to the mouth's width (incisors are about a
            # fifth of the smile's width long), never more than a third of a face-height-sized 10%.
            if upper_teeth:
                v_rest = _interp(u, rest_u, rest_v)
                edge = max(v_rest, v_up) + length * (1 - 0.45 * u * u) - _at(upper[1], u)
                teeth = (1 - _smoothstep((v - edge) + 0.5)) * (1 - _smoothstep((au - 0.72) / 0.2))
                # The upper lip's shadow falls on the teeth below it, deeper the more the lip overhangs them.
                under_lip = 0.62 + 0.38 * _smoothstep((v - v_up) / (0.02 * face_h))
                shade = _recede(au) * under_lip * _at(upper[0], u)
                shade *= 1 - 0.12 * _smoothstep((v - edge + 0.012 * face_h) / (0.012 * face_h))  # translucent edge
                for c in range(3):
                    tooth = colors[WALL, c] + (colors[TEETH, c] - colors[WALL, c]) * shade
                    rgb[c] += (tooth - rgb[c]) * teeth
            for c in range(3):
                color[i, j, c] = rgb[c]


@numba.njit(cache=True, nogil=True)
def blend(frame: np.ndarray, color: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """frame = frame + (color - frame) x alpha over the patch at (x0, y0), rounded to uint8.

    Args:
        frame: (S, S, 3) uint8; color: (h, w, 3) float; alpha: (h, w) float in [0, 1].
    """
    for i in range(color.shape[0]):
        for j in range(color.shape[1]):
            a = alpha[i, j]
            if a <= 0.0:
                continue
            for c in range(3):
                roi = float(frame[y0 + i, x0 + j, c])
                frame[y0 + i, x0 + j, c] = np.uint8(min(max(roi + (color[i, j, c] - roi) * a + 0.5, 0.0), 255.0))


@numba.njit(cache=True, nogil=True)
def skull_maps(maps: np.ndarray, x0: int, y0: int, posed: np.ndarray, photo: np.ndarray) -> None:
    """Where each pixel of a patch was in the photo if it is fixed to the skull: the pixel minus the head pose's shift
    of the photo's upper inner lip at the pixel's place across the mouth.

    Args:
        maps: (h, w, 2) float32, written: source x, y of the patch whose top-left pixel is (x0, y0).
        posed: (N, 2) the photo's upper inner lip under the current head pose, corner to corner; photo: (N, 2) the
            same line in the photo.
    """
    cx, cy = (posed[0, 0] + posed[-1, 0]) / 2, (posed[0, 1] + posed[-1, 1]) / 2
    half = max(math.hypot(posed[-1, 0] - posed[0, 0], posed[-1, 1] - posed[0, 1]) / 2, 1.0)
    axx, axy = (posed[-1, 0] - posed[0, 0]) / (2 * half), (posed[-1, 1] - posed[0, 1]) / (2 * half)
    knots, order = _by_u(posed, cx, cy, axx, axy, half)
    shift_x, shift_y = np.empty(len(posed)), np.empty(len(posed))
    for k in range(len(posed)):
        shift_x[k], shift_y[k] = posed[order[k], 0] - photo[order[k], 0], posed[order[k], 1] - photo[order[k], 1]
    for i in range(maps.shape[0]):
        for j in range(maps.shape[1]):
            x, y = float(x0 + j), float(y0 + i)
            u = ((x - cx) * axx + (y - cy) * axy) / half
            maps[i, j, 0] = x - _interp(u, knots, shift_x)
            maps[i, j, 1] = y - _interp(u, knots, shift_y)
