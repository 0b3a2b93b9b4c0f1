"""Audio-to-mouth: a small 1-D convolutional network from log-mel frames to the mouth and lip-corner controls.

Used for speech that comes without phoneme timings (uploaded or recorded audio, `animate`, a TTS server that gives
none). Input per video frame: 40 log-mel bands normalised by the line's own voiced mean and spread, plus the loudness
relative to the line's voiced level; output: jawOpen, mouthFunnel, mouthPucker, mouthStretch_L/R, mouthPress
(speaker.MOUTH) and mouthSmile_L/R (speaker.CORNERS). Four dilated convolutions see +-0.5 s of context (~190k
parameters). Trained on real talking faces by `warmchat.tools.train_lipsync`; this module also holds the derived real
tracks' format (`TalkingTrack`) and the evaluation protocol (`lagged_correlation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from warmchat.loading import load_once
from warmchat.motion.features import N_MELS, FrameFeatures
from warmchat.motion.speaker import CORNERS, MOUTH
from warmchat.paths import CHECKPOINTS, checkpoint

log = logging.getLogger(__name__)

N_IN = N_MELS + 1
TRACK_CONTROLS = MOUTH + CORNERS  # what the model outputs and the real tracks hold
N_OUT = len(TRACK_CONTROLS)
# jawOpen below this closes the lips (0.18 chosen on the held-out predictions: mean r 0.34 -> 0.38, closure recall
# 0.07 -> 0.57; docs/motion.md), OPEN_JAW (a wide-open speech frame, the training target's 95th percentile) is kept.
CLOSE_FLOOR = 0.18
OPEN_JAW = 0.45
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

    @property
    def features(self) -> FrameFeatures:
        return FrameFeatures(self.mel, self.energy_db, self.f0)

    def save(self, path: Path) -> None:
        """Compressed .npz, float arrays as float16."""
        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            arrays[f.name] = (
                value.astype(np.float16)
                if isinstance(value, np.ndarray) and value.dtype.kind == "f"
                else np.asarray(value)
            )
        np.savez_compressed(path, **arrays)


def load_talking_track(path: str | Path) -> TalkingTrack:
    """A track written by `TalkingTrack.save`."""
    with np.load(path) as data:
        values = {f.name: data[f.name] for f in fields(TalkingTrack)}
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


@load_once
def load_lipsync(path: str | None = None):
    """The trained network (torch, eval mode, CPU) from `checkpoints/lipsync.pt` by default."""
    import torch

    source = Path(path) if path else checkpoint("lipsync.pt")
    if not source.is_file():
        raise FileNotFoundError(
            f"audio-to-mouth checkpoint not found at {source}; train it with `python -m warmchat.tools.train_lipsync`"
        )
    model = build_model()
    state = torch.load(source, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    log.info("loaded audio-to-mouth model from %s", source)
    return model


def predict_mouth(model, feats: FrameFeatures) -> np.ndarray:
    """(T, 6) mouth controls for one line's features; closed wherever the line is silent."""
    import torch

    x = torch.from_numpy(line_inputs(feats).T[None])
    with torch.inference_mode():
        y = model(x)[0].T.numpy()
    silent = feats.energy_db < max(float(feats.energy_db.max()) - 40.0, -70.0)
    y[silent] = 0.0
    # A regression to the mean rarely says "shut": below the floor the lips close, above it the range is kept.
    y[:, 0] = np.clip((y[:, 0] - CLOSE_FLOOR) / (1.0 - CLOSE_FLOOR / OPEN_JAW), 0.0, 1.0)
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
