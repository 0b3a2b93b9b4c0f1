"""End to end: two example portraits and a 2-turn script -> MP4, plot, tree and SRT a user can check."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
from conftest import decode_video, probe

from warmchat import face as F
from warmchat.pipeline import output_paths


def test_cli_writes_all_four_files(rendered):
    paths = output_paths(rendered["out"])
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0, path
    tree = json.loads(paths["tree_json"].read_text())
    utterances = [n for n in tree["nodes"] if n["speaker"] is not None]
    assert len(utterances) == 2
    assert [n["speaker"] for n in utterances] == ["A", "B"]
    srt = paths["srt"].read_text()
    assert "Hello there!" in srt and "bad news" in srt and "-->" in srt


def test_mp4_has_h264_video_and_aac_audio_of_matching_length(rendered):
    info = probe(rendered["out"])
    assert re.search(r"Video: h264", info), info
    assert re.search(r"Audio: aac", info), info
    summary = rendered["summary"]
    size = rendered["size"]
    frames = decode_video(rendered["out"], 2 * size, size + 96)
    fps = 25
    assert abs(len(frames) - round(summary["duration_s"] * fps)) <= 1
    # The audio stream's own duration equals the video's within one frame.
    from warmchat.compose import ffmpeg_exe

    raw = subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(rendered["out"]),
            "-vn",
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            "24000",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    audio_s = len(raw) / 2 / 24000
    assert abs(audio_s - len(frames) / fps) <= 1.0 / fps + 0.03  # AAC priming may add a few ms


def _lip_gap(frame: np.ndarray) -> float | None:
    faces = F.detect_landmarks(frame)
    if not faces:
        return None
    lm = faces[0]
    gap = lm[list(F.LOWER_INNER_LIP[1:-1]), 1].mean() - lm[list(F.UPPER_INNER_LIP[1:-1]), 1].mean()
    return float(gap / np.linalg.norm(lm[F.FOREHEAD, :2] - lm[F.CHIN, :2]))


def test_speaker_moves_lips_far_more_than_listener(rendered):
    size = rendered["size"]
    frames = decode_video(rendered["out"], 2 * size, size + 96)
    tree = json.loads(output_paths(rendered["out"])["tree_json"].read_text())
    turns = [n for n in tree["nodes"] if n["speaker"] is not None]
    for node in turns:
        f0, f1 = int(node["start"] * 25), int(node["end"] * 25)
        gaps = {"A": [], "B": []}
        for f in range(f0, f1, 2):
            for person, x0 in (("A", 0), ("B", size)):
                gap = _lip_gap(np.ascontiguousarray(frames[f, :size, x0 : x0 + size]))
                if gap is not None:
                    gaps[person].append(gap)
        speaker, listener = node["speaker"], "B" if node["speaker"] == "A" else "A"
        assert len(gaps[speaker]) > 10 and len(gaps[listener]) > 10
        spk, lst = np.std(gaps[speaker]), np.std(gaps[listener])
        assert spk > 3 * lst, (node["text"], spk, lst)
        assert np.ptp(gaps[speaker]) > 0.03  # the mouth visibly opens and closes (3% of face height)
