"""Bad inputs give clear, specific errors that name the input, before any heavy work starts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from warmchat import InputError, generate
from warmchat.face import MAX_SIDE, build_rig, check_face, load_image


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
    with pytest.raises(InputError, match=r"Portrait A: broken\.jpg is not an image we can read \(PNG, JPEG, WebP"):
        build_rig(bad, "A")
    with pytest.raises(InputError, match="file not found"):
        build_rig(tmp_path / "missing.png", "A")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="Portrait B: the file is empty") as info:
        load_image(empty, "B")
    assert info.value.field == "portrait_b"
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((examples / "grace_hopper.jpg").read_bytes()[:3000])  # a valid header, then nothing
    with pytest.raises(InputError, match="not an image we can read"):
        load_image(truncated, "A")


def test_size_limits_are_checked_before_decoding(examples, tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from warmchat.config import LimitsConfig

    path = examples / "grace_hopper.jpg"  # 512 x 600, 62 KB
    with pytest.raises(InputError, match=r"Portrait A: the file is too large \(0\.1 MB; at most 0\.0 MB\)"):
        build_rig(path, "A", limits=LimitsConfig(image_bytes=10_000))
    # The pixel count is read from the header: nothing is decoded (load() would fail loudly here).
    monkeypatch.setattr(PILImage.Image, "load", lambda self: pytest.fail("decoded an oversized image"))
    with pytest.raises(InputError, match=r"too large \(512 x 600 = 0 megapixels; at most 0\)") as info:
        load_image(path, "B", limits=LimitsConfig(image_pixels=100_000))
    assert info.value.field == "portrait_b"
    monkeypatch.undo()
    with pytest.raises(InputError, match="too large"):  # arrays are held to the same pixel limit
        load_image(np.zeros((400, 400, 3), np.uint8), "A", limits=LimitsConfig(image_pixels=100_000))


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from warmchat.config import LimitsConfig

    bomb = tmp_path / "bomb.png"
    PILImage.new("L", (4000, 4000)).save(bomb)  # 16 megapixels of zeros: a few KB of PNG
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1_000_000)  # Pillow's own guard trips before ours
    with pytest.raises(InputError, match="too large to open safely"):
        load_image(bomb, "A", limits=LimitsConfig(image_pixels=10**9))
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"4000 x 4000 = 16 megapixels; at most 10"):
        load_image(bomb, "A", limits=LimitsConfig(image_pixels=10_000_000))


def test_every_mode_converts_the_same_way_from_a_file_a_pil_image_and_an_array(examples, tmp_path):
    from PIL import Image as PILImage

    src = PILImage.open(examples / "grace_hopper.jpg").convert("RGB")
    grey = np.asarray(src.convert("L"))
    dark16 = (grey.astype(np.uint16) * 16).astype(np.uint16)  # a dark 16-bit photo: max 4080 of 65535
    rgba = np.dstack([np.asarray(src), np.where(np.arange(512) < 256, 255, 0)[None, :].repeat(600, 0)])
    cases = {
        "grey16.png": (PILImage.fromarray(dark16), dark16),
        "grey.png": (src.convert("L"), grey),
        "palette.png": (src.convert("P"), None),
        "rgba.png": (PILImage.fromarray(rgba.astype(np.uint8)), rgba.astype(np.uint8)),
        "cmyk.tif": (src.convert("CMYK"), None),
    }
    for name, (img, arr) in cases.items():
        img.save(tmp_path / name)
        from_file = load_image(tmp_path / name)
        from_pil = load_image(PILImage.open(tmp_path / name))
        assert from_file.shape == (600, 512, 3) and from_file.dtype == np.uint8, name
        assert np.array_equal(from_file, from_pil), name
        if arr is not None:
            assert np.array_equal(from_file, load_image(arr)), name
    # 16-bit keeps its exposure: dark stays dark (x16 / 257), not stretched to full range.
    assert abs(float(load_image(tmp_path / "grey16.png").mean()) - grey.mean() * 16 / 257) < 1
    assert (load_image(tmp_path / "rgba.png")[:, 256:] == 255).all()  # transparent -> white
    assert abs(float(load_image(tmp_path / "cmyk.tif").astype(float).mean()) - float(np.asarray(src).mean())) < 3


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
    with pytest.raises(InputError, match=r"Portrait A: the face is too small: about \d+ px tall \(minimum 64 px\)"):
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


def test_sixteen_bit_webp_cmyk_and_small_photos_are_read(examples, tmp_path):
    src = Image.open(examples / "astronaut.png").convert("RGB")
    grey16 = (np.asarray(src.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    src.save(tmp_path / "a.webp", quality=90)
    src.convert("CMYK").save(tmp_path / "c.jpg")
    src.resize((340, 340)).save(tmp_path / "small.png")
    for name in ("g16.png", "a.webp", "c.jpg", "small.png"):
        rig = build_rig(tmp_path / name, "B")
        assert rig.image.shape == (512, 512, 3), name
        assert rig.person_mask is not None and rig.person_mask.shape == (512, 512)
    # 16-bit samples keep their exposure (not stretched to full range).
    assert abs(float(load_image(tmp_path / "g16.png").mean()) - float(np.asarray(src.convert("L")).mean())) < 2
    assert any("enlarged" in note for note in rig.notes)  # the small one says it will look soft


def test_huge_photo_is_downscaled_and_pastes_back(examples, tmp_path):
    big = Image.open(examples / "grace_hopper.jpg").resize((3400, 4000), Image.Resampling.BICUBIC)
    big.save(tmp_path / "big.jpg", quality=85)
    rig = build_rig(tmp_path / "big.jpg", "A")
    assert max(rig.source_size) <= MAX_SIDE and rig.source_scale < 1
    original = np.asarray(Image.open(tmp_path / "big.jpg").convert("RGB"))
    pasted = rig.paste_back(rig.image, original)  # the unanimated crop goes back where it came from
    assert pasted.shape == original.shape
    x0, y0, side = (np.array(rig.crop_box) / rig.source_scale).astype(int)
    inner = (slice(max(y0, 0) + 50, y0 + side - 50), slice(max(x0, 0) + 50, x0 + side - 50))
    err = np.abs(pasted[inner].astype(int) - original[inner].astype(int)).mean()
    assert err < 6, err


def test_several_faces_use_the_largest_and_say_so(examples):
    big = np.asarray(Image.open(examples / "astronaut.png").convert("RGB"))
    small = np.asarray(Image.open(examples / "grace_hopper.jpg").convert("RGB").resize((256, 300)))
    canvas = np.full((600, 900, 3), 230, np.uint8)
    canvas[40:552, 20:532] = big
    canvas[150:450, 600:856] = small
    rig = build_rig(canvas, "A")
    assert rig.n_faces == 2 and any("2 faces" in note for note in rig.notes)
    assert rig.crop_box[0] < 300  # the astronaut (left, larger) was chosen


def test_face_cut_off_by_the_edge(examples):
    img = np.asarray(Image.open(examples / "astronaut.png").convert("RGB"))[:150]  # the chin is below the frame
    with pytest.raises(InputError, match="Portrait A: the face is cut off"):
        build_rig(img, "A")


def test_profile_and_tiny_faces_are_refused_with_the_limit(examples):
    from warmchat.rig import rotation_matrix

    rig = build_rig(examples / "astronaut.png", "A")
    lm = rig.landmarks.astype(np.float64)
    center = lm.mean(axis=0)
    turned = (lm - center) @ rotation_matrix(np.radians(60), 0, 0).T + center
    with pytest.raises(InputError, match=r"Portrait B: the face is turned too far .* at most 45"):
        check_face(turned, (512, 512), "B")
    check_face((lm - center) @ rotation_matrix(np.radians(25), 0, 0).T + center, (512, 512), "B")  # fine
    with pytest.raises(InputError, match=r"too small: \d+ px forehead to chin \(minimum 64 px\)"):
        check_face(center + (lm - center) * 0.2, (512, 512), "B")


def test_doctor_reports_a_missing_ffprobe_with_the_fix(monkeypatch):
    import shutil

    from warmchat.health import check_environment

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "ffprobe" else real_which(name))
    problems = check_environment()
    assert any("ffprobe" in p and "apt-get install ffmpeg" in p for p in problems)
