"""The CPU renderer does what the controls say, measured by re-detecting the face mesh on rendered frames."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat import face as F
from warmchat.controls import INDEX, rest_pose, zeros
from warmchat.render.cpu import CpuRenderer


@pytest.fixture(scope="module")
def renderer(examples):
    return CpuRenderer(F.build_rig(examples / "grace_hopper.jpg", "A"))


def _measure(frame):
    lm = F.detect_landmarks(frame)[0]
    face_h = np.linalg.norm(lm[F.FOREHEAD, :2] - lm[F.CHIN, :2])
    gap = (lm[list(F.LOWER_INNER_LIP[1:-1]), 1].mean() - lm[list(F.UPPER_INNER_LIP[1:-1]), 1].mean()) / face_h
    eye = (lm[list(F.EYE_L_LOWER), 1].mean() - lm[list(F.EYE_L_UPPER), 1].mean()) / face_h
    return gap, eye


def test_rest_frame_matches_the_crop(renderer):
    frame = renderer.render(zeros(1)[0], rest_pose(1)[0])
    mse = np.mean((frame.astype(float) - renderer.face.image.astype(float)) ** 2)
    psnr = 10 * np.log10(255**2 / max(mse, 1e-9))
    assert psnr >= 35, psnr


def test_jaw_opens_the_mouth_monotonically(renderer):
    gaps = []
    for jaw in (0.0, 0.3, 0.6):
        e = zeros(1)[0]
        e[INDEX["jawOpen"]] = jaw
        gaps.append(_measure(renderer.render(e, rest_pose(1)[0]))[0])
    assert gaps[0] < gaps[1] < gaps[2]
    assert gaps[2] - gaps[0] > 0.04  # at least 4% of face height


def test_blink_closes_the_eye(examples):
    # The astronaut photo: the tracker reads eyelids reliably without glasses in the way.
    renderer = CpuRenderer(F.build_rig(examples / "astronaut.png", "A"))
    e = zeros(1)[0]
    open_eye = _measure(renderer.render(e, rest_pose(1)[0]))[1]
    e[INDEX["eyeBlink_L"]] = e[INDEX["eyeBlink_R"]] = 1.0
    frame = renderer.render(e, rest_pose(1)[0])
    faces = F.detect_landmarks(frame)
    assert faces, "face lost when blinking"
    closed = _measure(frame)[1]
    assert closed < 0.5 * open_eye, (open_eye, closed)


def test_expression_leaves_background_untouched(renderer):
    e = zeros(1)[0]
    e[INDEX["jawOpen"]] = 0.5
    e[INDEX["mouthSmile_L"]] = 1.0
    frame = renderer.render(e, rest_pose(1)[0])
    diff = np.abs(frame.astype(int) - renderer.face.image.astype(int)).max(axis=2)
    assert diff[:40].max() == 0 and diff[:, :40].max() == 0  # top and left margins far from the face
