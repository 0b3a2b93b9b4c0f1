"""Bad inputs give clear, specific errors that name the input, before any heavy work starts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from warmchat import InputError, generate
from warmchat.face import build_rig


@pytest.fixture
def no_face(tmp_path):
    from skimage import data

    path = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(path)
    return path


def test_no_face_is_reported_for_that_portrait(examples, no_face, tmp_path):
    with pytest.raises(InputError) as info:
        generate(
            examples / "astronaut.png", no_face, topic="x", script="A: hi there\nB: hello", out=tmp_path / "o.mp4"
        )
    assert "Portrait B" in str(info.value) and "no human face found" in str(info.value)
    assert info.value.field == "portrait_b"
    assert not (tmp_path / "o.mp4").exists()


def test_unreadable_file(examples, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(InputError, match=r"Portrait A: broken\.jpg is not a readable image"):
        build_rig(bad, "A")
    with pytest.raises(InputError, match="file not found"):
        build_rig(tmp_path / "missing.png", "A")


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"emotion_a": "grumpy"}, "emotion_a", "unknown emotion 'grumpy'"),
        ({"turns": 1}, "turns", "turns must be a whole number from 2 to 30"),
        ({"topic": "   "}, "topic", "the topic is empty"),
        ({"topic": "x" * 301}, "topic", "keep it under 300"),
    ],
)
def test_bad_choices(examples, tmp_path, kwargs, field, needle):
    args = {"topic": "weekend plans", "turns": 2, **kwargs}
    with pytest.raises(InputError) as info:
        generate(examples / "astronaut.png", examples / "grace_hopper.jpg", out=tmp_path / "o.mp4", **args)
    assert needle in str(info.value)
    assert info.value.field == field


def test_script_backend_without_a_script_is_named(examples, tmp_path):
    from warmchat import WarmChatConfig

    cfg = WarmChatConfig()
    cfg.dialogue.backend = "script"
    with pytest.raises(InputError, match="needs a script") as info:
        generate(
            examples / "astronaut.png", examples / "grace_hopper.jpg", topic="x", out=tmp_path / "o.mp4", config=cfg
        )
    assert info.value.field == "script"


def test_small_face_gives_the_minimum(examples):
    img = np.asarray(Image.open(examples / "astronaut.png").convert("RGB").resize((96, 96)))
    canvas = np.full((400, 400, 3), 200, np.uint8)
    canvas[150:246, 150:246] = img
    with pytest.raises(InputError, match=r"too small|no human face"):
        build_rig(canvas, "A")


def test_alpha_grayscale_and_exif_rotation_are_handled(examples, tmp_path):
    src = Image.open(examples / "grace_hopper.jpg")
    rgba = src.convert("RGBA")
    rgba.save(tmp_path / "a.png")
    src.convert("L").save(tmp_path / "g.jpg")
    rotated = src.rotate(90, expand=True)  # stored sideways (turned left), as phones do ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with EXIF orientation "rotate 90 clockwise to view"
    rotated.save(tmp_path / "r.jpg", exif=exif)
    for name in ("a.png", "g.jpg", "r.jpg"):
        rig = build_rig(tmp_path / name, "A")
        assert rig.image.shape == (512, 512, 3)
        assert rig.landmarks.shape == (478, 3)
