"""Audio-to-mouth: a small 1-D convolutional network from log-mel frames to the six mouth controls.

Used for speech that comes without phoneme timings (uploaded audio, a TTS server that gives none). Input per video
frame: 40 log-mel bands normalised by the line's own voiced mean and spread, plus the loudness relative to the
line's voiced level; output: jawOpen, mouthFunnel, mouthPucker, mouthStretch_L/R, mouthPress (speaker.MOUTH).
Four dilated convolutions see +-0.5 s of context (~190k parameters). Trained by `warmchat.tools.train_lipsync`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from warmchat.loading import load_once
from warmchat.motion.features import N_MELS, FrameFeatures
from warmchat.paths import checkpoint

log = logging.getLogger(__name__)

N_IN = N_MELS + 1
N_OUT = 6
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
    return y.astype(np.float32)
