"""`animate`: one portrait speaking a recording. Lips measured back from the rendered frames by the face tracker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import decode_video, probe

from warmchat.animate import animate
from warmchat.compose import ffmpeg_exe, write_wav
from warmchat.config import LimitsConfig, WarmChatConfig
from warmchat.errors import InputError
from warmchat.render.fidelity import landmarks, lip_gap

SIZE = 160
SILENCE_S = 0.8


def _config(limits: LimitsConfig | None = None) -> WarmChatConfig:
    cfg = WarmChatConfig()
    cfg.face.size = SIZE
    cfg.render.renderer = "cpu"
    if limits:
        cfg.limits = limits
    return cfg


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[Path, float, float]:
    """(wav, speech start s, speech end s): a spoken line between stretches of silence."""
    from warmchat.speech import synthesize

    utt = synthesize("Maybe we could meet for lunch on Monday.", "piper-joe")
    sr = utt.sample_rate
    silence = np.zeros(int(SILENCE_S * sr), np.float32)
    path = tmp_path_factory.mktemp("animate") / "speech.wav"
    write_wav(path, np.concatenate([silence, utt.audio, silence]), sr)
    return path, SILENCE_S, SILENCE_S + utt.duration


@pytest.fixture(scope="module")
def animated(speech, examples, tmp_path_factory):
    wav, start, end = speech
    out = tmp_path_factory.mktemp("animate_out") / "hopper.mp4"
    result = animate(examples / "grace_hopper.jpg", wav, out, emotion="happy", config=_config())
    return result, start, end


def test_mouth_opens_for_loud_speech_and_stays_shut_in_silence(animated):
    result, start, end = animated
    frames = decode_video(result.video, SIZE, SIZE)
    gaps = np.array([lip_gap(lm) if (lm := landmarks(f)) is not None else np.nan for f in frames])
    fps = result.fps
    silent = np.r_[gaps[: int(start * fps) - 3], gaps[int(end * fps) + 4 :]]
    spoken = gaps[int(start * fps) + 2 : int(end * fps) - 2]
    assert np.isfinite(silent).mean() > 0.9 and np.isfinite(spoken).mean() > 0.9  # the face is there throughout
    # Lips together (fraction of face height); the tracker reads up to ~1.4 % on a few frames of a moving head.
    assert np.nanpercentile(silent, 95) < 0.012 and np.nanmax(silent) < 0.02
    assert np.nanpercentile(spoken, 75) > 0.03 and np.nanmax(spoken) > 0.05  # open while talking
    assert np.nanmean(spoken < 0.012) > 0.03  # and they also meet inside speech (m, b, p, short pauses)


def test_video_has_the_audio_its_length_and_fps(animated, speech):
    result, _, _ = animated
    wav, _, _ = speech
    report = probe(result.video)
    assert "Audio: aac" in report and "Video: h264" in report and f"{SIZE}x{SIZE}" in report
    import wave

    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert result.fps == 25 and result.n_frames == int(np.ceil(seconds * 25))
    assert len(decode_video(result.video, SIZE, SIZE)) == result.n_frames
    assert result.mouth == "audio model"


def test_cli_animates_an_m4a(speech, examples, tmp_path):
    from warmchat.cli import main

    wav, _, _ = speech
    m4a = tmp_path / "speech.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(wav), "-t", "1.2", "-c:a", "aac", str(m4a)], check=True)
    out = tmp_path / "cli.mp4"
    args = ["animate", "--portrait", str(examples / "mona_lisa.jpg"), "--audio", str(m4a), "--size", "96"]
    assert main([*args, "--emotion", "sad", "--out", str(out)]) == 0
    assert out.is_file() and "Audio: aac" in probe(out)


def test_bad_audio_is_refused_with_a_clear_message(tmp_path, examples, speech, capsys):
    portrait = examples / "grace_hopper.jpg"
    with pytest.raises(InputError, match=r"not an audio file.*\.wav"):
        animate(portrait, tmp_path / "notes.txt", tmp_path / "x.mp4", config=_config())
    with pytest.raises(InputError, match="file not found"):
        animate(portrait, tmp_path / "missing.wav", tmp_path / "x.mp4", config=_config())
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(24000, np.float32), 24000)
    with pytest.raises(InputError, match="silent"):
        animate(portrait, quiet, tmp_path / "x.mp4", config=_config())
    video_only = tmp_path / "video_only.m4a"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1", "-f", "mp4", str(video_only)],
        check=True,
    )
    with pytest.raises(InputError, match="no audio stream"):
        animate(portrait, video_only, tmp_path / "x.mp4", config=_config())
    with pytest.raises(InputError, match="limit is 1 s"):
        animate(portrait, speech[0], tmp_path / "x.mp4", config=_config(LimitsConfig(speech_s=1.0)))
    from warmchat.cli import main

    assert main(["animate", "--portrait", str(portrait), "--audio", str(quiet), "--out", str(tmp_path / "y.mp4")]) == 2
    err = capsys.readouterr().err
    assert "silent" in err and "Traceback" not in err


def test_a_photo_without_a_face_is_refused(tmp_path, speech):
    with pytest.raises(InputError, match="face") as info:
        animate(Path(__file__).parent / "data" / "shapes.png", speech[0], tmp_path / "x.mp4", config=_config())
    assert info.value.field == "portrait"


def test_app_tab_has_the_animate_endpoint_and_words_errors(tmp_path, examples):
    import gradio as gr

    from webui.animate import build_animate_tab, run_animate

    with gr.Blocks() as demo:
        build_animate_tab()
    assert "/animate" in demo.get_api_info()["named_endpoints"]
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(24000, np.float32), 24000)
    with pytest.raises(gr.Error, match="silent") as info:
        run_animate(str(examples / "grace_hopper.jpg"), str(quiet), "happy", "", 256, progress=lambda *a, **k: None)
    assert "Traceback" not in str(info.value)
    with pytest.raises(gr.Error, match="record the speech"):
        run_animate(str(examples / "grace_hopper.jpg"), None, "happy", "", 256, progress=lambda *a, **k: None)


def test_transcript_route_times_the_lips_from_the_phonemes(speech, examples, tmp_path, monkeypatch):
    import importlib
    import wave

    from warmchat.animate import SAMPLE_RATE, decode_audio, text_mouth

    animate_module = importlib.import_module("warmchat.animate")  # the package's `animate` is the function

    wav_in, start, end = speech
    wav = tmp_path / "decoded.wav"
    decode_audio(wav_in, wav, 60.0)
    with wave.open(str(wav)) as w:
        n_samples = w.getnframes()
    n = int(np.ceil(n_samples / SAMPLE_RATE * 25))
    mouth, _, phonemes = text_mouth(wav, n_samples, n, 25, "Maybe we could meet for lunch on Monday.", seed=0)
    jaw = mouth[:, 0]
    assert jaw[: int(start * 25) - 3].max() < 0.03 and jaw[int(end * 25) + 4 :].max() < 0.03
    assert jaw[int(start * 25) : int(end * 25)].max() > 0.25
    first_m = next(a for p, a, b in phonemes if p == "m")  # the /m/ of "Maybe": aligned into the speech
    assert start - 0.15 < first_m < start + 0.3
    monkeypatch.setattr(animate_module, "ALIGN_MAX_S", 1.0)
    with pytest.raises(InputError, match="leave the text out"):
        animate_module.animate(
            examples / "grace_hopper.jpg", wav_in, tmp_path / "x.mp4", text="Maybe", config=_config()
        )
