"""The face check: only human faces are animated, and always upright."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from warmchat import InputError
from warmchat import face as F
from warmchat.face import build_rig, face_likeness, face_roll, load_image

DATA = Path(__file__).resolve().parent / "data"
DRAWINGS = ("smiley", "dots_and_line", "cartoon_head", "shapes", "noise")
EXAMPLES = ("astronaut.png", "grace_hopper.jpg", "mona_lisa.jpg", "girl_with_a_pearl_earring.jpg")


def _upright(lm: np.ndarray) -> bool:
    """Eyes above the mouth, in image coordinates (y down)."""
    eyes_y = lm[[*F.EYE_R_CORNERS, *F.EYE_L_CORNERS], 1].mean()
    mouth_y = lm[[F.MOUTH_CORNER_R, F.MOUTH_CORNER_L], 1].mean()
    return bool(eyes_y < mouth_y - 0.15 * np.ptp(lm[:, 1]))


def test_a_cat_is_not_a_human_face(tmp_path):
    from skimage import data

    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    with pytest.raises(InputError, match=r"^Portrait B: no human face found\.") as info:
        build_rig(path, "B")
    assert info.value.field == "portrait_b"
    face_only = np.ascontiguousarray(data.chelsea()[:, :380])  # the cat's face filling the frame
    with pytest.raises(InputError, match="no human face found"):
        build_rig(face_only, "A")


@pytest.mark.parametrize("name", DRAWINGS)
def test_drawings_without_a_human_face_are_refused(name):
    with pytest.raises(InputError, match=r"^Portrait A: no human face found\.") as info:
        build_rig(DATA / f"{name}.png", "A")
    assert info.value.field == "portrait_a"


@pytest.mark.parametrize("name", EXAMPLES)
def test_photos_and_paintings_of_people_pass(examples, name):
    rig = build_rig(examples / name, "A")
    assert rig.quarter_turns == 0 and _upright(rig.landmarks)
    likeness = face_likeness(load_image(examples / name), _source_landmarks(rig))
    assert likeness.is_human, likeness


def _source_landmarks(rig: F.FaceRig) -> np.ndarray:
    """The rig's landmarks mapped back from crop pixels to the (downscaled) original's pixels."""
    x0, y0, side = rig.crop_box
    k = side / rig.size
    out = rig.landmarks.astype(np.float64) * k
    out[:, 0] += x0
    out[:, 1] += y0
    return out


@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("name", ["astronaut.png", "girl_with_a_pearl_earring.jpg"])
def test_sideways_and_upside_down_photos_are_turned_upright(examples, tmp_path, name, turns):
    src = np.asarray(Image.open(examples / name).convert("RGB"))
    path = tmp_path / "turned.png"
    Image.fromarray(np.rot90(src, turns)).save(path)  # no EXIF: the pixels themselves are turned
    rig = build_rig(path, "A")
    assert rig.quarter_turns == (4 - turns) % 4
    assert _upright(rig.landmarks) and abs(face_roll(rig.landmarks)) < 30
    assert any("turned" in note for note in rig.notes)
    # The crop matches the one made from the upright photo, and paste-back returns the photo upright.
    upright = build_rig(examples / name, "A")
    assert np.abs(rig.image.astype(int) - upright.image.astype(int)).mean() < 6
    pasted = rig.paste_back(rig.image, np.rot90(src, turns))
    assert pasted.shape == src.shape


def test_exif_orientation_is_applied_when_reading(examples, tmp_path):
    src = Image.open(examples / "grace_hopper.jpg").convert("RGB")  # 512 x 600, upright
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": the pixels are stored turned left, as phones do
    src.rotate(90, expand=True).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert load_image(tmp_path / "phone.jpg").shape == (600, 512, 3)
    rig = build_rig(tmp_path / "phone.jpg", "A")
    assert rig.quarter_turns == 0 and _upright(rig.landmarks)  # upright from EXIF, no search needed


def test_a_tiny_real_face_is_too_small_not_missing(examples):
    img = np.asarray(Image.open(examples / "grace_hopper.jpg").convert("RGB").resize((48, 56)))
    canvas = np.full((480, 640, 3), 210, np.uint8)
    canvas[200:256, 300:348] = img
    with pytest.raises(InputError, match=r"too small: about \d+ px tall \(minimum 64 px\)"):
        build_rig(canvas, "A")
