"""The CPU renderer does what the controls say, measured by re-detecting the face mesh on rendered frames."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from warmchat import face as F
from warmchat.controls import INDEX, POSE_INDEX, rest_pose, zeros
from warmchat.render import fidelity as Q
from warmchat.render.cpu import CpuRenderer


@pytest.fixture(scope="module")
def grace(examples):
    return CpuRenderer(F.build_rig(examples / "grace_hopper.jpg", "A"))


@pytest.fixture(scope="module")
def astronaut(examples):
    # The tracker reads this portrait's eyelids reliably (no glasses in the way).
    return CpuRenderer(F.build_rig(examples / "astronaut.png", "A"))


def _frame(renderer, pose_deg: dict | None = None, **controls):
    e, p = zeros(1)[0], rest_pose(1)[0]
    for name, value in controls.items():
        e[INDEX[name]] = value
    for name, value in (pose_deg or {}).items():
        p[POSE_INDEX[name]] = np.radians(value)
    return renderer.render(e, p)


def _speckles(frame: np.ndarray) -> int:
    """Pixels that jump far from their neighbourhood: seams, tears and stray samples show up here."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return int((np.abs(grey.astype(int) - cv2.medianBlur(grey, 5).astype(int)) > 70).sum())


def test_rest_frame_matches_the_crop(grace):
    assert Q.psnr(_frame(grace), grace.rig.image) >= 35


def test_jaw_opens_the_mouth_monotonically(grace):
    gaps = [Q.lip_gap(Q.landmarks(_frame(grace, jawOpen=j))) for j in (0.0, 0.2, 0.4, 0.6)]
    assert np.all(np.diff(gaps) > 0), gaps
    assert gaps[-1] - gaps[0] >= 0.04, gaps  # at least 4% of face height


def test_blink_closes_the_eyes(astronaut):
    open_ear = Q.eye_aspect_ratio(Q.landmarks(_frame(astronaut)))
    closed = Q.landmarks(_frame(astronaut, eyeBlink_L=1.0, eyeBlink_R=1.0))
    assert closed is not None, "face lost when blinking"
    assert Q.eye_aspect_ratio(closed) <= 0.4 * open_ear, (open_ear, Q.eye_aspect_ratio(closed))


def test_commanded_yaw_is_measured_back(astronaut):
    model = astronaut.rig.landmarks[np.array(Q.RIGID)]
    rest = Q.head_pose(model, Q.landmarks(_frame(astronaut))[np.array(Q.RIGID), :2])[0]
    turned = Q.head_pose(model, Q.landmarks(_frame(astronaut, {"yaw": 10.0}))[np.array(Q.RIGID), :2])[0]
    assert abs(turned - rest - 10.0) <= 3.0, turned - rest


def test_smile_raises_the_lip_corners(astronaut):
    rest = Q.mouth_corner_height(Q.landmarks(_frame(astronaut)))
    smile = Q.mouth_corner_height(Q.landmarks(_frame(astronaut, mouthSmile_L=1.0, mouthSmile_R=1.0)))
    assert smile - rest >= 0.015, (rest, smile)  # 1.5% of face height


def test_expression_leaves_the_background_untouched(grace):
    import cv2

    rest = _frame(grace)
    talking = _frame(grace, jawOpen=0.5, mouthSmile_L=1.0, eyeBlink_R=1.0, browInnerUp=1.0, noseSneer=0.5)
    head = grace.mesh_rig.head_alpha > 0.02
    assert Q.ssim_outside(talking, grace.rig.image, head) >= 0.98
    # Away from the head (past how far the chin moves) not a single pixel changes.
    away = cv2.dilate(head.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    assert np.array_equal(talking[away], rest[away])


def test_head_turn_moves_hair_not_background(grace):
    import cv2

    turned = _frame(grace, {"yaw": 10.0, "roll": 5.0})
    near_head = cv2.dilate((grace.mesh_rig.head_alpha > 0.02).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    diff = np.abs(turned.astype(int) - grace.rig.image.astype(int)).max(axis=2)
    assert diff[~near_head].max() <= 2  # the flag behind her stays where it is
    hat = grace.rig.landmarks[F.FOREHEAD, :2] - [0, 0.25 * grace.mesh_rig.face_height]  # the hat moves with the head
    x, y = np.round(hat).astype(int)
    assert diff[y - 10 : y + 10, x - 30 : x + 30].mean() > 5


@pytest.mark.parametrize("shift", [(7, 0), (-5, 3)])
def test_head_shifted_by_whole_pixels_shows_the_photo_pixel_for_pixel(grace, shift):
    """The warp's maps are exact at every pixel (not interpolated between samples), and the frame is drawn in bands:
    moving the head by whole pixels must show the photo's face unchanged, just moved, with no seam between bands."""
    import cv2

    dx, dy = shift
    e, p = zeros(1)[0], rest_pose(1)[0]
    p[POSE_INDEX["tx"]], p[POSE_INDEX["ty"]] = np.array(shift) / grace.mesh_rig.face_height
    frame = grace.render(e, p)
    # Where the whole head moves and the layer is opaque, away from its edge (the neck fades from moving to still).
    face = np.zeros(grace.rig.image.shape[:2], np.uint8)
    cv2.fillPoly(face, [np.round(grace.rig.landmarks[list(F.FACE_OVAL), :2]).astype(np.int32)], 1)
    inside = cv2.erode(face, np.ones((9, 9), np.uint8)).astype(bool) & (grace.mesh_rig.head_alpha >= 1.0)
    ys, xs = np.nonzero(inside)
    assert len(ys) > 20000  # most of the face
    assert np.array_equal(frame[ys + dy, xs + dx], grace.rig.image[ys, xs])


@pytest.mark.parametrize("pose", [{"yaw": -15}, {"yaw": 15}, {"pitch": -15}, {"pitch": 15}, {"roll": 10}])
def test_largest_poses_have_no_tears(astronaut, pose):
    frame = _frame(astronaut, pose, jawOpen=0.4)
    assert Q.landmarks(frame) is not None
    assert _speckles(frame) <= _speckles(_frame(astronaut, jawOpen=0.4)) + 25


def test_memory_stays_flat_over_a_long_render(astronaut):
    e, p = zeros(1)[0], rest_pose(1)[0]
    astronaut.render(e, p)
    tracemalloc.start()
    for i in range(150):
        e[INDEX["jawOpen"]] = 0.3 + 0.3 * np.sin(i / 3)
        p[POSE_INDEX["yaw"]] = 0.05 * np.sin(i / 10)
        astronaut.render(e, p)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 4_000_000, current


@pytest.fixture(scope="module")
def pearl(examples):
    # Vermeer's girl: lips parted mid-breath (inner-lip gap about 2% of face height), a dark mouth, no teeth.
    return CpuRenderer(F.build_rig(examples / "girl_with_a_pearl_earring.jpg", "A"))


@pytest.mark.parametrize("name, photo_gap, opened", [("astronaut", 0.04, 0.05), ("pearl", 0.015, 0.04)])
def test_open_mouthed_portrait_closes_at_rest(request, name, photo_gap, opened):
    # The astronaut smiles with her teeth showing (inner-lip gap about 5% of face height as the tracker reads it).
    renderer = request.getfixturevalue(name)
    assert Q.lip_gap(Q.landmarks(renderer.rig.image)) > photo_gap
    assert renderer.mesh_rig.photo_mouth_open
    shut = Q.lip_gap(Q.landmarks(_frame(renderer)))
    assert shut < 0.012, shut  # read back from the pixels: the lips meet
    frown = Q.lip_gap(Q.landmarks(_frame(renderer, mouthFrown_L=1.0, mouthFrown_R=1.0, mouthStretch_L=0.5)))
    assert frown < 0.012, frown  # and stay together when only the lip corners move
    wide = Q.lip_gap(Q.landmarks(_frame(renderer, jawOpen=0.6)))
    assert wide - shut >= opened, (shut, wide)


def test_open_mouth_shows_the_photos_own_teeth(astronaut):
    import cv2

    # Opened back to about the photo's opening, the mouth shows the photo's teeth, not painted ones: the mouth
    # region matches the photo far better than a painted interior would.
    rig = astronaut.rig
    up, lo = rig.landmarks[list(F.UPPER_INNER_LIP)], rig.landmarks[list(F.LOWER_INNER_LIP)]
    hole = np.zeros((rig.size, rig.size), np.uint8)
    cv2.fillPoly(hole, [np.round(np.concatenate([up, lo[-2:0:-1]])[:, :2]).astype(np.int32)], 1)
    hole = cv2.erode(hole, np.ones((5, 5), np.uint8)) > 0
    frames = {j: _frame(astronaut, jawOpen=j) for j in (0.0, 0.3, 0.45)}
    err = {j: np.abs(f[hole].astype(int) - rig.image[hole].astype(int)).mean() for j, f in frames.items()}
    assert min(err[0.3], err[0.45]) < 0.5 * err[0.0], err


def test_closed_mouthed_portrait_is_unchanged_at_rest(grace):
    assert not grace.mesh_rig.photo_mouth_open
    assert Q.psnr(_frame(grace), grace.rig.image) >= 35
    assert abs(Q.lip_gap(Q.landmarks(_frame(grace))) - Q.lip_gap(grace.rig.landmarks)) < 0.005


@pytest.mark.parametrize("pose", [{"yaw": 15}, {"yaw": -15}, {"pitch": -12}])
def test_turning_head_leaves_no_ghost_of_its_outline(astronaut, pose):
    import cv2

    # Where the photo's hair edge was and the moved head no longer is (re-segmented on the frame), the frame must
    # show plain background: a copy of the outline left on the background plate, or a strip of wall dragged with the
    # hair, shows up as edges there.
    rig = astronaut.rig
    fh = rig.face_height
    frame = _frame(astronaut, pose)
    edge = cv2.dilate(((rig.person_mask > 0.02) & (rig.person_mask < 0.98)).astype(np.uint8), np.ones((5, 5))) > 0
    edge[rig.size // 2 :] = False  # around the head, not the shoulders
    moved = F.segment_person(frame) > 0.02
    far = edge & ~(cv2.dilate(moved.astype(np.uint8), np.ones((int(0.06 * fh) | 1,) * 2, np.uint8)) > 0)
    assert far.sum() > 100, far.sum()
    luma = cv2.GaussianBlur((frame.astype(np.float32) @ [0.299, 0.587, 0.114]).astype(np.float32), (0, 0), 1.0)
    grad = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0), cv2.Sobel(luma, cv2.CV_32F, 0, 1)) / 8  # luma per pixel
    assert (grad[far] > 3).mean() < 0.03, (grad[far] > 3).mean()  # the old plate left 7-32% here


def test_repeated_pose_reuses_the_frame_and_renderers_run_side_by_side(grace, astronaut):
    from concurrent.futures import ThreadPoolExecutor

    e, p = zeros(6), rest_pose(6)
    e[:, INDEX["jawOpen"]] = [0.0, 0.3, 0.5, 0.5, 0.2, 0.0]
    e[:, INDEX["eyeBlink_L"]] = [0.0, 0.0, 1.0, 1.0, 0.5, 0.0]
    p[:, POSE_INDEX["yaw"]] = np.radians([0.0, 3.0, 6.0, 6.0, 2.0, -4.0])  # frames 2 and 3: a held pose
    alone = {r.rig.name + str(id(r)): r.render_batch(e, p) for r in (grace, astronaut)}
    for frames in alone.values():
        assert np.array_equal(frames[3], frames[2])
    first = grace.render(e[0], p[0])
    first[:] = 0  # the caller owns what it gets: a reused frame is a copy
    assert np.array_equal(grace.render(e[0], p[0]), alone[grace.rig.name + str(id(grace))][0])
    # Two renderers share no state: rendered in parallel threads, each gives what it gives alone.
    with ThreadPoolExecutor(2) as pool:
        together = dict(zip(alone, pool.map(lambda r: r.render_batch(e, p), (grace, astronaut)), strict=True))
    for key, frames in alone.items():
        assert np.array_equal(together[key], frames), key


def test_painted_teeth_recede_into_the_mouths_shadow(grace):
    # Painted teeth that stay white to the corners read as dentures: the side teeth are darker than the front ones.
    e, p = zeros(1)[0], rest_pose(1)[0]
    e[INDEX["jawOpen"]] = 0.5
    frame = grace.render(e, p)
    upper = grace.frame_points(e, p)[list(F.UPPER_INNER_LIP)]  # corner to corner, as drawn
    luma = frame.astype(np.float32) @ [0.299, 0.587, 0.114]
    fh = grace.mesh_rig.face_height

    def teeth(i: int) -> float:  # just below the upper lip at point i, where the upper teeth show
        x, y = upper[i]
        return float(luma[int(y + 0.012 * fh) : int(y + 0.025 * fh), int(x) - 1 : int(x) + 2].mean())

    front, sides = teeth(5), (teeth(2) + teeth(8)) / 2
    assert front > 120 and sides < 0.6 * front, (front, sides)  # 0.53 here; 0.68 for the earlier, flat teeth
