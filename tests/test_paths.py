"""Checkpoints: every one the library uses is found, from the checkout and from a non-editable install, and a missing
or broken one is reported with its fix (by the loaders and by `python -m warmchat doctor`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from warmchat import health, paths
from warmchat.motion import listener
from warmchat.paths import MAKERS, OPTIONAL, REQUIRED, MissingCheckpoint, checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_every_checkpoint_the_library_uses_is_in_the_repository():
    assert paths.IN_CHECKOUT and paths.CHECKPOINTS == ROOT / "checkpoints"
    assert set(REQUIRED) | set(OPTIONAL) == set(MAKERS)
    for name in MAKERS:
        assert checkpoint(name).exists()
    assert health.check_checkpoints() == []
    health.require_checkpoints()


def test_a_missing_checkpoint_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CHECKPOINTS", tmp_path)
    with pytest.raises(MissingCheckpoint, match=r"'crhmg.pt' is missing: expected .*crhmg.pt.*train_crhmg") as info:
        checkpoint("crhmg.pt")
    assert "git checkout -- checkpoints" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    listener.load_leed.cache_clear()
    try:
        with pytest.raises(MissingCheckpoint, match=r"'leed.json' is missing.*build_leed"):
            listener.load_leed()
    finally:
        listener.load_leed.cache_clear()


def test_an_installed_wheel_says_to_reinstall(monkeypatch):
    monkeypatch.setattr(paths, "IN_CHECKOUT", False)
    assert "pip install ." in paths.how_to_fix("lipsync.pt") and "train_lipsync" in paths.how_to_fix("lipsync.pt")


def test_doctor_reports_missing_and_broken_checkpoints_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "crhmg.pt").write_bytes(b"")
    (tmp_path / "lipsync.pt").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    (tmp_path / "leed.json").write_text('{"emotions": ')
    shutil.copytree(ROOT / "checkpoints" / "motion_tracks", tmp_path / "motion_tracks")
    monkeypatch.setattr(paths, "CHECKPOINTS", tmp_path)
    problems = health.check_environment()
    by_name = {name: [p for p in problems if name in p] for name in MAKERS}
    assert any("is empty" in p and "train_crhmg" in p for p in by_name["crhmg.pt"])
    assert any("Git LFS pointer" in p and "git lfs pull" in p for p in by_name["lipsync.pt"])
    assert any("not valid JSON" in p and "build_leed" in p for p in by_name["leed.json"])
    assert any("missing" in p and "cue words only" in p for p in by_name["text_emotion_head.npz"])
    assert not by_name["motion_tracks"]
    with pytest.raises(MissingCheckpoint) as info:
        health.require_checkpoints()
    assert len(str(info.value).splitlines()) == 3

    (tmp_path / "crhmg.pt").write_bytes(b"not a zip archive")
    assert "not a readable torch/numpy archive" in health.checkpoint_problem("crhmg.pt")


def test_a_non_editable_install_finds_every_checkpoint(tmp_path):
    """`pip install .` (not editable) copies checkpoints/ into the package; from elsewhere, all of them resolve."""
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("warmchat", "checkpoints"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*install, "--target", str(site), str(src)], check=True, capture_output=True, timeout=300)
    shutil.rmtree(src)  # nothing may lean on the source tree
    elsewhere.mkdir()
    probe = (
        "import json, warmchat.paths as p, warmchat.health as h, warmchat.motion.listener as l; "
        "print(json.dumps({'file': p.__file__, 'in_checkout': p.IN_CHECKOUT, 'dir': str(p.CHECKPOINTS), "
        "'resolved': {n: str(p.checkpoint(n)) for n in p.MAKERS}, 'problems': h.check_checkpoints(), "
        "'leed_emotions': len(l.load_leed().clips)}))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, check=True, capture_output=True, text=True, timeout=120
    )
    got = json.loads(out.stdout)
    assert Path(got["file"]).is_relative_to(site) and not got["in_checkout"]
    assert got["dir"] == str(site / "warmchat" / "checkpoints")
    for name, path in got["resolved"].items():
        assert Path(path).is_relative_to(site), name
    assert sorted(p.name for p in (site / "warmchat" / "checkpoints" / "motion_tracks").glob("*.npz")) == sorted(
        p.name for p in (ROOT / "checkpoints" / "motion_tracks").glob("*.npz")
    )
    assert got["problems"] == [] and got["leed_emotions"] == 8
