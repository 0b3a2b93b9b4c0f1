"""The square crop of a photo with no room around the face: tighter, and padded without streaks."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat import face as F


@pytest.fixture(scope="module")
def tight(examples):
    """Grace Hopper cut down to her face (a little forehead room, none at the sides or below), and its rig."""
    img = F.load_image(examples / "grace_hopper.jpg")
    lm = F.detect_landmarks(img)[0]
    (x0, y0), (x1, y1) = lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)
    m = 0.08 * (y1 - y0)
    photo = np.ascontiguousarray(img[int(y0 - 3 * m) : int(y1 + m), int(x0 - m) : int(x1 + m)])
    return photo, F.build_rig(photo, "A")


def test_no_room_gives_a_tighter_crop_with_the_whole_face(tight):
    photo, rig = tight
    h = photo.shape[0]
    _, y0, side = rig.crop_box
    face_h = rig.face_height * side / rig.size  # in photo pixels
    assert side < 0.9 * 1.6 * 1.45 * face_h  # tighter than the usual head-and-shoulders margin
    assert y0 >= 0 and y0 + side > h  # moved into the photo at the top; only the bottom and the sides are made up
    lm = rig.landmarks[:, :2]
    assert lm.min() > 0 and lm.max() < rig.size  # the whole face is in the crop


def test_padding_continues_the_photo_without_streaks(tight):
    photo, rig = tight
    h, w = photo.shape[:2]
    x0, y0, side = rig.crop_box
    k = rig.size / side
    luma = rig.image.astype(np.float32) @ [0.299, 0.587, 0.114]
    dx, dy = np.abs(np.diff(luma, axis=1))[:-1], np.abs(np.diff(luma, axis=0))[:, :-1]
    yy, xx = np.mgrid[0 : rig.size - 1, 0 : rig.size - 1]
    sx, sy = xx / k + x0, yy / k + y0  # where each crop pixel lies in the photo
    bands = {"left": sx < -3, "right": sx > w + 3, "bottom": sy > h + 3}
    for name, band in bands.items():
        assert band.sum() > 1000, name
        along, across = (dx, dy) if name != "bottom" else (dy, dx)
        # Repeated edge pixels are constant along the padding (0 luma/px) and vary across it (3-4 luma/px here):
        # streaks. A smooth continuation varies little, and alike both ways.
        assert across[band].mean() < 1.5, (name, across[band].mean())
        assert along[band].mean() > 0.4 * across[band].mean(), (name, along[band].mean(), across[band].mean())
