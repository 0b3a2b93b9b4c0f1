"""A script line that brings its own recording: it plays as recorded, moves the speaker's lips, and is read only from
the folder the caller grants (never from a script typed into the app)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, decode_video

from warmchat.errors import InputError

SIZE = 192
FPS = 25
LEAD_S, TAIL_S = 0.3, 0.2  # silence the test puts around the recorded speech: it must stay in the turn


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, float]:
    """A take made here: the male offline voice at 16 kHz and -34 dBFS (quieter than the voices), silence around."""
    from warmchat.speech import synthesize
    from warmchat.speech.audio import resample, voiced_rms

    folder = tmp_path_factory.mktemp("takes")
    utt = synthesize("Well, my friend, I brought my own voice along today.", "piper-joe", seed=3)
    sr = 16000
    speech = resample(utt.audio, utt.sample_rate, sr)
    speech = speech * np.float32(10 ** (-34 / 20) / voiced_rms(speech, sr))
    audio = np.concatenate([np.zeros(int(LEAD_S * sr)), speech, np.zeros(int(TAIL_S * sr))])
    (folder / "takes").mkdir()
    path = folder / "takes" / "hello.wav"
    _write_wav(path, audio, sr)
    return path, len(audio) / sr


def _render(script: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "warmchat", "render", "--portrait-a", str(EXAMPLES / "astronaut.png"),
           "--portrait-b", str(EXAMPLES / "grace_hopper.jpg"), "--script", str(script), "--size", str(SIZE),
           "--seed", "0", "--out", str(out), *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


def _lip_gaps(frames: np.ndarray, x0: int) -> np.ndarray:
    """Inner-lip gap per frame (fraction of face height) of the face at column x0, re-detected; NaN where none."""
    from warmchat import face as F

    gaps = []
    for frame in frames:
        faces = F.detect_landmarks(np.ascontiguousarray(frame[:SIZE, x0 : x0 + SIZE]))
        if not faces:
            gaps.append(np.nan)
            continue
        lm = faces[0]
        gap = lm[list(F.LOWER_INNER_LIP[1:-1]), 1].mean() - lm[list(F.UPPER_INNER_LIP[1:-1]), 1].mean()
        gaps.append(gap / np.linalg.norm(lm[F.FOREHEAD, :2] - lm[F.CHIN, :2]))
    return np.array(gaps)


def test_recorded_line_plays_as_recorded_and_moves_the_speakers_lips(recording, tmp_path):
    from warmchat.compose import ffmpeg_exe
    from warmchat.motion.lipsync import lagged_correlation
    from warmchat.speech.audio import frame_rms_db, voiced_rms

    path, seconds = recording
    script = path.parent.parent / "script.txt"
    script.write_text(
        "A [happy] <audio: takes/hello.wav>: Well, my friend, I brought my own voice along today.\n"
        "B: How lovely, it sounds just like you.\n"
    )
    out = tmp_path / "chat.mp4"
    proc = _render(script, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["turns"][0]["text"].startswith("Well, my friend") and summary["turns"][0]["emotion"] == "happy"
    tree = json.loads(out.with_suffix(".tree.json").read_text())
    first, second = [n for n in tree["nodes"] if n["speaker"] is not None]
    assert first["audio"] == "takes/hello.wav" and second["audio"] is None
    assert abs((first["end"] - first["start"]) - seconds) <= 1 / FPS  # the whole take, its silences included

    # Levelled like the voice that answers it: within 3 dB, though the take was recorded 14 dB quieter.
    sr = 24000
    pcm = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(out), "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    mix = np.frombuffer(pcm, np.float32)
    levels = [20 * np.log10(voiced_rms(mix[int(n["start"] * sr) : int(n["end"] * sr)], sr)) for n in (first, second)]
    assert abs(levels[0] - levels[1]) < 3.0, levels

    frames = decode_video(out, 2 * SIZE, SIZE + 96)
    f0, f1 = int(round(first["start"] * FPS)), int(round(first["end"] * FPS))
    speaker, listener = _lip_gaps(frames[f0:f1], 0), _lip_gaps(frames[f0:f1], SIZE)
    assert np.isfinite(speaker).mean() > 0.9 and np.isfinite(listener).mean() > 0.9
    assert np.nanstd(speaker) > 3 * np.nanstd(listener), (np.nanstd(speaker), np.nanstd(listener))
    lead = int(LEAD_S * FPS)
    assert np.nanmax(speaker[lead + 5 :]) - np.nanmedian(speaker[: lead - 1]) > 0.03  # opens on speech, shut before

    # The lips follow the take's loudness envelope (the protocol: Pearson, lag within +-3 frames).
    take = mix[int(first["start"] * sr) : int(first["end"] * sr)]
    env = frame_rms_db(take, sr, 1 / FPS)[: len(speaker)]
    env = np.clip(env - env.max() + 40, 0, None)  # dB above a 40 dB floor under the loudest frame
    gap = np.nan_to_num(speaker, nan=float(np.nanmedian(speaker)))[: len(env)]
    r, lag = lagged_correlation(gap, env, trim=2)
    assert r > 0.3, (r, lag)


def test_cli_refuses_a_recording_outside_the_scripts_folder(recording, tmp_path):
    path, _ = recording
    folder = tmp_path / "scripts"
    folder.mkdir()
    script = folder / "script.txt"
    script.write_text(f"A <audio: ../{path.parent.parent.name}/takes/hello.wav>: Hello.\nB: Hi.\n")
    proc = _render(script, tmp_path / "x.mp4")
    assert proc.returncode == 2
    assert "script line 1" in proc.stderr and "inside the script's folder" in proc.stderr, proc.stderr[-800:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("A <audio: ../outside.wav>: Hi.", "inside the script's folder"),
        ("A <audio: /etc/passwd>: Hi.", "inside the script's folder"),
        ("A <audio: escape/out.wav>: Hi.", "leads out of the script's folder"),  # a symlink to a folder outside
        ("A <audio: takes/missing.wav>: Hi.", "file not found"),
        ("A <audio: notes.txt>: Hi.", "not an audio file"),
        ("A <audio: >: Hi.", "names no file"),
    ],
)
def test_bad_references_are_refused_naming_the_line(recording, tmp_path, line, needle):
    from warmchat.dialogue import parse_script

    path, _ = recording
    base = path.parent.parent
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "out.wav").write_bytes(path.read_bytes())
    if not (base / "escape").exists():
        (base / "escape").symlink_to(outside, target_is_directory=True)
    (base / "notes.txt").write_text("A: secret")
    with pytest.raises(InputError, match=needle) as info:
        parse_script(f"B: Hello.\n{line}", audio_dir=base)
    assert str(info.value).startswith("script line 2") and info.value.field == "script"


def test_recorded_line_without_a_granted_folder_is_refused(recording):
    from warmchat.dialogue import parse_script
    from warmchat.pipeline import generate

    path, _ = recording
    script = "A: Hello.\nB [sad] <audio: takes/hello.wav>: Hi."
    with pytest.raises(InputError, match=r"script line 2 refers to an audio file; .*audio_dir="):
        parse_script(script)
    with pytest.raises(InputError, match="script line 2 refers to an audio file"):
        generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=script, out=path.parent / "x.mp4")
    turns = parse_script(script, audio_dir=path.parent.parent)
    assert turns[1].audio == "takes/hello.wav" and (turns[1].emotion, turns[1].intensity) == ("sad", 0.7)


def test_recorded_line_is_levelled_resampled_and_never_cached(recording, tmp_path):
    from dataclasses import replace

    from warmchat.config import SpeechConfig
    from warmchat.schema import Turn
    from warmchat.speech import voice_turn
    from warmchat.speech.audio import voiced_rms

    path, seconds = recording
    cfg = replace(SpeechConfig(), cache_dir=str(tmp_path / "cache"))
    turn = Turn("A", "Well, my friend.", "happy", 0.8, audio="takes/hello.wav")
    utt = voice_turn(turn, 0, "hibari", config=cfg, audio_dir=path.parent.parent)
    assert utt.sample_rate == 24000 and abs(utt.duration - seconds) < 1e-3
    # Timings are its stretches of speech and pause only: the lead-in silence, then speech; contiguous to the end.
    labels = [p for p, _, _ in utt.phonemes]
    assert set(labels) == {"_", "spn"} and labels[0] == "_" and abs(utt.phonemes[0][2] - LEAD_S) < 0.05
    assert all(b == a2 for (_, _, b), (_, a2, _) in zip(utt.phonemes, utt.phonemes[1:], strict=False))
    assert utt.phonemes[-1][2] == pytest.approx(utt.duration, abs=1e-4)
    assert abs(20 * np.log10(voiced_rms(utt.audio, utt.sample_rate)) - cfg.target_dbfs) < 0.5
    assert not any((tmp_path / "cache").rglob("*.*"))
    voice_turn(Turn("B", "Hi.", "neutral", 0.5), 1, "hibari", config=cfg)
    assert any((tmp_path / "cache").rglob("*.*"))  # the cache is live: the voiced line went into it
    with pytest.raises(InputError, match=r"turn 1 .*the line refers to an audio file"):
        voice_turn(turn, 0, "hibari", config=cfg)
    from warmchat.config import LimitsConfig
    from warmchat.dialogue import parse_script

    with pytest.raises(InputError, match="a conversation may last 2 s"):
        parse_script("A <audio: takes/hello.wav>: Hi.", limits=LimitsConfig(speech_s=2), audio_dir=path.parent.parent)


def test_tree_keeps_the_recording_and_old_trees_still_load(tmp_path):
    from warmchat.regenerate import load_tree
    from warmchat.schema import Turn
    from warmchat.tree import InteractiveTalkingTree

    itt = InteractiveTalkingTree("a walk", "happy", "neutral")
    itt.add_turn(Turn("A", "Hello.", "happy", 0.8, audio="takes/hello.wav"))
    itt.add_turn(Turn("B", "Hi.", "neutral", 0.5))
    itt.save(tmp_path / "t.json")
    again = InteractiveTalkingTree.load(tmp_path / "t.json")
    assert [t.audio for t in again.active_turns()] == ["takes/hello.wav", None]
    old = json.loads((tmp_path / "t.json").read_text())
    for node in old["nodes"]:
        node.pop("audio")  # a tree saved before recorded lines existed
    assert [t.audio for t in load_tree(old).active_turns()] == [None, None]


def test_a_tree_naming_a_recording_is_refused_without_a_granted_folder(tmp_path):
    """A tree JSON is an input too (the app's Regenerate takes one back): its recorded lines pass the same gate."""
    from warmchat.pipeline import iter_generate
    from warmchat.schema import Turn
    from warmchat.tree import InteractiveTalkingTree

    itt = InteractiveTalkingTree("a walk", "happy", "neutral")
    itt.add_turn(Turn("A", "Hello.", "happy", 0.8, audio="/etc/hostname"))
    itt.add_turn(Turn("B", "Hi.", "neutral", 0.5))
    events = iter_generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", out=tmp_path / "x.mp4",
                           from_tree=itt)  # fmt: skip
    with pytest.raises(InputError, match="script line 1 refers to an audio file"):
        next(events)
    with pytest.raises(InputError, match="inside the script's folder"):
        next(iter_generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", out=tmp_path / "x.mp4",
                           from_tree=itt, audio_dir=tmp_path))  # fmt: skip
