"""Animate: one portrait speaking any recorded speech (a WAV, MP3 or M4A file) -> an MP4 with that audio.

The mouth comes from the learned audio-to-mouth model (`motion.lipsync`, trained on real talking faces: the phonetic
model on Whisper encoder features, or the log-mel fallback without faster-whisper); given the transcript, the phoneme
route (timings carried onto the audio by DTW, `speech.align`, through the coarticulation model) shapes the lips, and
the jaw is the one that measured best on real clips (the phonetic model's alone, or the mean with the log-mel one's).
Blinks, accent brows, the emotion's expression and CRHMG head motion come from the same motion stack as a
conversation. Audio is decoded once by ffmpeg into a temporary 16-bit WAV, read back a chunk at a time, and frames are
rendered and encoded a batch at a time, so memory stays bounded however long the audio is.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warmchat.config import WarmChatConfig
from warmchat.errors import InputError
from warmchat.inputs import _check_out, _check_settings

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".webm")  # what ffmpeg decodes and the app records
SAMPLE_RATE = 24000  # the decoded track (and the one muxed into the video)
CHUNK_S = 20.0  # audio read and turned into mouth motion at a time
CONTEXT_S = 1.0  # audio read either side of a chunk, so its edges see the sound around them
SILENT_DBFS = -50.0  # audio whose loudest 10 ms is quieter than this has no speech to animate
MIN_AUDIO_S = 0.2
ALIGN_MAX_S = 60.0  # the text route aligns the whole clip at once (DTW time and memory grow with length squared)
TRIM_DB, TRIM_KEEP_S = 40.0, 0.03  # `speech.audio.trim`'s defaults: silence is 40 dB below the loudest 10 ms
VOICE_JAW = 0.45  # jawOpen of a fully open, loud voice, for the head model's voice condition (as in a conversation)


@dataclass
class AnimateResult:
    """What `animate` wrote."""

    video: Path
    duration_s: float
    n_frames: int
    fps: int
    renderer: str
    mouth: str  # "audio model", or "text timings + audio model" when a transcript was given


def _ffmpeg() -> str:
    from warmchat.compose import ffmpeg_exe

    return ffmpeg_exe()


def check_audio_path(audio: str | Path) -> Path:
    """The audio file as a Path; InputError when it is missing or not a speech format ffmpeg reads."""
    path = Path(audio)
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise InputError(
            f"audio: {path.name} is not an audio file WarmChat reads; use one of {', '.join(AUDIO_EXTENSIONS)}",
            "audio",
        )
    if not path.is_file():
        raise InputError(f"audio: file not found: {path}", "audio")
    return path


def probe_duration(path: Path) -> float:
    """Seconds of the file's first audio stream, from ffmpeg's header report; InputError when it has none."""
    proc = subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False)
    report = proc.stderr
    if "Audio:" not in report:
        why = "it has no audio stream" if "Stream #" in report else "ffmpeg cannot read it"
        raise InputError(f"audio: {path.name}: {why}; give a recording of speech (WAV, MP3, M4A)", "audio")
    found = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", report)
    if not found:
        return float("nan")  # a stream without a header duration (e.g. some WebM): measured after decoding
    h, m, s = found.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def decode_audio(path: Path, wav: Path, max_s: float) -> float:
    """Decode the file's audio to a mono 16-bit WAV at SAMPLE_RATE; returns its length in seconds.

    Raises:
        InputError: no audio stream, longer than `max_s`, shorter than MIN_AUDIO_S, or silent.
    """
    declared = probe_duration(path)
    if declared > max_s:
        raise InputError(f"audio: {path.name} is {declared:.0f} s long; the limit is {max_s:g} s", "audio")
    cmd = [_ffmpeg(), "-v", "error", "-y", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE)]
    cmd += ["-t", f"{max_s + 1:.3f}", "-c:a", "pcm_s16le", str(wav)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InputError(f"audio: {path.name} could not be decoded: {proc.stderr.strip()[-300:]}", "audio")
    with wave.open(str(wav), "rb") as w:
        n = w.getnframes()
    seconds = n / SAMPLE_RATE
    if seconds > max_s:
        raise InputError(f"audio: {path.name} is longer than the limit of {max_s:g} s", "audio")
    if seconds < MIN_AUDIO_S:
        raise InputError(f"audio: {path.name} is only {seconds:.2f} s long; give at least a word of speech", "audio")
    peak = max((_loudest_db(chunk) for chunk in _read_chunks(wav, 0, n, SAMPLE_RATE * 30)), default=-120.0)
    if peak < SILENT_DBFS:
        raise InputError(
            f"audio: {path.name} is silent (loudest moment {peak:.0f} dBFS); record speech and try again", "audio"
        )
    return seconds


def _loudest_db(y: np.ndarray) -> float:
    hop = SAMPLE_RATE // 100
    m = len(y) // hop
    if m == 0:
        return -120.0
    frames = y[: m * hop].reshape(m, hop).astype(np.float64)
    return float(10 * np.log10((frames**2).mean(axis=1).max() + 1e-12))


def _read_chunks(wav: Path, start: int, stop: int, size: int):
    """Samples [start, stop) of a 16-bit mono WAV as float32 arrays of at most `size` samples."""
    with wave.open(str(wav), "rb") as w:
        w.setpos(start)
        for pos in range(start, stop, size):
            raw = w.readframes(min(size, stop - pos))
            yield np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0


def read_span(wav: Path, n_samples: int, a: int, b: int) -> np.ndarray:
    """Samples [a, b) of the WAV (zeros outside [0, n_samples))."""
    out = np.zeros(b - a, np.float32)
    lo, hi = max(a, 0), min(b, n_samples)
    if hi > lo:
        out[lo - a : hi - a] = np.concatenate(list(_read_chunks(wav, lo, hi, hi - lo)))
    return out


def _frame_audio(wav: Path, n_samples: int, f0: int, f1: int, fps: int) -> np.ndarray:
    """Audio whose `frame_features` frame k is centred on video frame f0 + k (k < f1 - f0)."""
    spf = SAMPLE_RATE / fps
    return read_span(wav, n_samples, round(f0 * spf), round((f1 + 1) * spf))


def learned_mouth(
    wav: Path, n_samples: int, n_frames: int, fps: int, checkpoint: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """((T, 8) mouth + lip-corner controls, (T,) accent brows) from the audio model, CHUNK_S of audio at a time."""
    from warmchat.motion.features import frame_features
    from warmchat.motion.lipsync import load_lipsync, predict_mouth
    from warmchat.motion.speaker import accent_brows

    model = load_lipsync(checkpoint)
    step, ctx = int(CHUNK_S * fps), int(CONTEXT_S * fps)
    mouth = np.zeros((n_frames, 8), np.float32)
    brows = np.zeros(n_frames, np.float32)
    for c0 in range(0, n_frames, step):
        c1 = min(c0 + step, n_frames)
        a, b = max(c0 - ctx, 0), min(c1 + ctx, n_frames)
        audio = _frame_audio(wav, n_samples, a, b, fps)
        feats = frame_features(audio, SAMPLE_RATE, fps, b - a)
        mouth[c0:c1] = predict_mouth(model, feats, audio, SAMPLE_RATE, fps)[c0 - a : c1 - a]
        brows[c0:c1] = accent_brows(feats.f0, feats.energy_db, fps)[c0 - a : c1 - a]
    return mouth, brows


def text_mouth(wav: Path, n_samples: int, n_frames: int, fps: int, text: str, seed: int):
    """((T, 8) mouth, (T,) brows, phonemes) from the transcript's phonemes aligned to the audio (DTW)."""
    from warmchat.motion.features import frame_features
    from warmchat.motion.speaker import accent_brows, timed_mouth
    from warmchat.speech import OfflineBackend
    from warmchat.speech.align import align
    from warmchat.speech.audio import PAUSE, Speech, mean_f0, trim
    from warmchat.speech.text import normalize_text, speakable

    spoken = normalize_text(text)
    if not speakable(spoken):
        raise InputError(f"text: nothing speakable in {text!r}", "text")
    audio = read_span(wav, n_samples, 0, n_samples)
    # The reference voice of the same register aligns best (docs/speech.md).
    voice = "piper-joe" if mean_f0(audio, SAMPLE_RATE) < 165.0 else "hibari"
    reference = OfflineBackend().speak(spoken, voice, "neutral", 0.0, seed)
    # DTW pairs the ends of both signals: align the speech without its leading and trailing silence.
    spoken_part = trim(Speech(audio, SAMPLE_RATE), -TRIM_DB, TRIM_KEEP_S)
    offset = _speech_start(audio)
    timed = align(spoken_part.audio, SAMPLE_RATE, reference)
    duration = n_samples / SAMPLE_RATE
    phonemes = [(p, a + offset, b + offset) for p, a, b in timed.phonemes]
    phonemes = [(PAUSE, 0.0, offset)] * (offset > 0) + phonemes + [(PAUSE, phonemes[-1][2], duration)]
    feats = frame_features(_frame_audio(wav, n_samples, 0, n_frames, fps), SAMPLE_RATE, fps, n_frames)
    mouth = np.zeros((n_frames, 8), np.float32)
    mouth[:, :6] = timed_mouth(phonemes, duration, feats, 0, fps)
    return mouth, accent_brows(feats.f0, feats.energy_db, fps), phonemes


def _speech_start(audio: np.ndarray) -> float:
    """Seconds of leading silence `speech.audio.trim` cuts (the same threshold and margin)."""
    from warmchat.speech.audio import frame_rms_db

    db = frame_rms_db(audio, SAMPLE_RATE)
    loud = np.flatnonzero(db > db.max() - TRIM_DB)
    return max(int(loud[0]) * (SAMPLE_RATE // 100) - int(TRIM_KEEP_S * SAMPLE_RATE), 0) / SAMPLE_RATE


def animate(
    portrait: str | Path | np.ndarray,
    audio: str | Path,
    out: str | Path = "out/animate.mp4",
    *,
    text: str | None = None,
    emotion: str = "neutral",
    intensity: float = 0.8,
    config: WarmChatConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
    lipsync_checkpoint: str | Path | None = None,
) -> AnimateResult:
    """Render one portrait speaking `audio`: mouth, blinks, brows, head motion and the chosen emotion, audio muxed.

    Args:
        portrait: photo of the face (path, PIL image or array).
        audio: speech recording (.wav, .mp3, .m4a, also .flac, .ogg, .webm).
        out: the .mp4 to write.
        text: the transcript; when given (audio up to ALIGN_MAX_S), the lip shapes follow its phonemes aligned to
            the audio (the jaw as measured best, see the module's docstring).
        emotion: one of the 8 emotions; shapes the face and how wide the mouth opens.
        intensity: 0..1 strength of the emotion.
        config: size (`face.size`), fps (`compose.fps`), renderer, seed, motion and limits (`limits.speech_s`).
        progress: called with (fraction, message).
        lipsync_checkpoint: the audio-to-mouth weights (default: `lipsync.load_lipsync()`'s choice); the benchmark
            passes each clip's held-out model.
    Returns:
        AnimateResult.
    Raises:
        InputError: naming the bad input (audio, portrait, emotion, text, out) and the fix.
    """
    from warmchat import face
    from warmchat.compose import VideoWriter
    from warmchat.controls import INDEX, K, clip_expression
    from warmchat.emotions import normalize_emotion, soft_label
    from warmchat.motion import AROUSAL, draw_person_motion
    from warmchat.motion.expressions import emotion_expression
    from warmchat.motion.head import blink_track, head_pose
    from warmchat.motion.speaker import BROW_GAIN, MOUTH_IDX, shape_mouth
    from warmchat.render import make_renderer

    cfg = config or WarmChatConfig()
    progress = progress or (lambda f, m: None)
    _check_settings(cfg)  # size, fps and seed, checked as for a conversation
    try:
        emo = soft_label(normalize_emotion(emotion), intensity)
    except ValueError as exc:
        raise InputError(f"emotion: {exc}", "emotion") from None
    fps, limits = cfg.compose.fps, cfg.limits
    path = check_audio_path(audio)
    out = _check_out(out)

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        progress(0.0, "reading the audio")
        seconds = decode_audio(path, wav, limits.speech_s)
        use_text = bool(text and text.strip())
        if use_text and seconds > ALIGN_MAX_S:
            raise InputError(
                f"text: aligning a transcript works for audio up to {ALIGN_MAX_S:g} s (this is {seconds:.0f} s); "
                "leave the text out and the mouth follows the sound itself",
                "text",
            )
        progress(0.02, "reading the portrait")
        try:
            rig = face.build_rig(portrait, "A", cfg.face, limits=limits)
        except InputError as exc:
            raise InputError(str(exc).replace("Portrait A", "Portrait"), "portrait") from None
        renderer = make_renderer(rig, cfg.render.renderer, cfg.render, cfg.seed)
        with wave.open(str(wav), "rb") as w:
            n_samples = w.getnframes()
        n_frames = int(np.ceil(seconds * fps))

        progress(0.05, "moving the lips")
        phonemes: list = []
        ckpt = str(lipsync_checkpoint) if lipsync_checkpoint else None
        mouth, brows = learned_mouth(wav, n_samples, n_frames, fps, ckpt)
        if use_text:
            # Measured on the real GRID clips with exact transcripts (held-out, docs/motion.md): the phonetic model's
            # jaw alone follows real lips best (r 0.73; the text route 0.41, the mean of both 0.67), while the
            # log-mel model's gains from the mean (0.55 vs 0.48 alone). Lip shapes (rounding, press on p/b/m) from
            # the phonemes, corners from the audio model.
            from warmchat.motion.lipsync import PhoneticMouth, load_lipsync

            timed, brows, phonemes = text_mouth(wav, n_samples, n_frames, fps, text, cfg.seed)
            phonetic = isinstance(load_lipsync(ckpt), PhoneticMouth)
            timed[:, 0] = mouth[:, 0] if phonetic else (timed[:, 0] + mouth[:, 0]) / 2
            timed[:, 6:] = mouth[:, 6:]
            mouth = timed
        curve = np.repeat(emo[None].astype(np.float32), n_frames, axis=0)  # (T, 8)
        own = np.zeros((n_frames, K), np.float32)  # (T, K) the speaker's own controls
        own[:, MOUTH_IDX] = shape_mouth(mouth, emo)
        lift = brows * float(emo @ BROW_GAIN)
        own[:, INDEX["browInnerUp"]] += 0.3 * lift
        own[:, INDEX["browOuterUp_L"]] += 0.25 * lift
        own[:, INDEX["browOuterUp_R"]] += 0.25 * lift

        params = draw_person_motion(np.random.default_rng(cfg.seed).spawn(1)[0], cfg.motion)
        # Phrase-end blinks where the transcript's timings show a pause; otherwise spontaneous blinks only.
        events = np.array([a + 0.05 for p, a, b in phonemes if p == "_" and b - a >= 0.12 and a > 0.3])
        voice = np.clip(own[:, INDEX["jawOpen"]] / VOICE_JAW, 0, 1)
        arousal = float(emo @ AROUSAL)
        cond = np.stack([np.ones(n_frames), np.full(n_frames, arousal), voice], 1).astype(np.float32)

        batch = cfg.render.batch_frames
        with VideoWriter(out, rig.size, rig.size, fps, wav, cfg.compose.crf) as writer:
            for f0 in range(0, n_frames, batch):
                f1 = min(f0 + batch, n_frames)
                t = np.arange(f0, f1) / fps
                expression = emotion_expression(curve[f0:f1]) + own[f0:f1] + blink_track(params, events, t)
                pose = head_pose(params, cond, fps, f0, f1, cfg.motion.head_sway)
                for frame in renderer.render_batch(clip_expression(expression), pose.astype(np.float32)):
                    writer.write(frame)
                progress(0.1 + 0.9 * f1 / n_frames, f"rendering — {f1 / n_frames:.0%}")
    log.info("animated %s: %d frames, mouth from %s, %s", out, n_frames, "text" if use_text else "audio", emotion)
    return AnimateResult(
        video=out,
        duration_s=n_frames / fps,
        n_frames=n_frames,
        fps=fps,
        renderer=renderer.name,
        mouth="text timings + audio model" if use_text else "audio model",
    )
