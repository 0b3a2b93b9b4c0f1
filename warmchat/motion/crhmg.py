"""CRHMG: the Consistent Random Head Mask Generator, our implementation of the paper's head-motion model.

Pipeline (DESIGN.md, CRHMG section), with the choices the paper leaves open:

    head mask of the frame before the window (1 x 32 x 32, rendered from a head pose, `head_masks`)
      -> conv encoder 1 -> 32 -> 64 -> 128 channels (stride 2, ReLU), global average pool, linear -> z1 (d = 64)
    tokens_t = z1 + eps * W_eta eta_t + pos_t + W_c c_t                    t = 1 .. N (N = 64 frames = 2.56 s)
      eta: controlled noise, one N(0, I) code of 16 numbers every 8 frames, linearly interpolated (so it varies
           smoothly); eps in [0, 1] sets how far a person strays from the average motion
      pos: learned positional table; c_t: conditions (speaking 0..1, arousal -1..1, voice level 0..1)
      -> 6 transformer encoder layers (4 heads, pre-norm, *causal* attention: frame t sees conditions up to t only)
      -> variational decoder per frame: (mu, log sigma) of a 32-d latent -> mask logits (32 x 32, transposed
         convs) and the head pose (6) alongside
    Training (warmchat/tools/train_crhmg.py) is a conditional VAE: a posterior network reads the real window and
    proposes eta, KL-regularised towards N(0, I), so at generation time eta ~ N(0, I) yields motion with real
    amplitude and rhythm instead of the average of all motions.

Arbitrary length: windows start every 48 frames and overlap the previous one by 16; window k is conditioned on
the mask of the last frame the previous window alone decides (frame 48 k - 1), and the overlap is cross-faded, so
there are no seams; the model is trained to continue from wherever the head is, back towards rest, so nothing
drifts. Because attention is causal and each window's noise comes from (seed, window index), frame t depends only
on the seed and the conditions up to t: a conversation rendered turn by turn gets exactly the frames of a single
pass, and finished windows are cached so each call only generates new ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warmchat.loading import load_once
from warmchat.paths import checkpoint

log = logging.getLogger(__name__)

FPS = 25  # the model's frame rate; other rates are resampled
MASK = 32  # mask side, pixels
WINDOW = 64  # frames per generated window
HOP = 48  # a new window every HOP frames (overlap = WINDOW - HOP)
NOISE_STEP = 8  # frames per noise code
N_COND = 3  # speaking, arousal, voice level
EASE_IN = 25  # frames over which motion eases in from the portrait's own pose at the start
# Pose normalisation (yaw, pitch, roll rad; tx, ty face heights; scale - 1): typical conversational ranges.
POSE_UNIT = np.array([np.radians(5), np.radians(4), np.radians(3), 0.02, 0.02, 0.02], np.float32)


@dataclass
class CRHMGConfig:
    """Architecture (stored in the checkpoint)."""

    d: int = 64
    layers: int = 6
    heads: int = 4
    ff: int = 128
    latent: int = 32
    noise_dim: int = 16
    window: int = WINDOW


# ----- head masks ------------------------------------------------------------------------------------------------
def _head_geometry() -> tuple[np.ndarray, list[np.ndarray]]:
    """A generic head in face heights (x right, y down, z away from the camera, origin at the rotation pivot):
    the face outline ring and the features (eyes, nose ridge, mouth) that make a turn visible inside it."""
    a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    # Outline: an egg-shaped ring around the face, bulging forward at the cheeks; pivot sits 0.15 below the ears.
    outline = np.stack([0.42 * np.sin(a), -0.15 - 0.55 * np.cos(a) + 0.05 * np.cos(a) ** 2, -0.25 + 0 * a], 1)
    eye = np.stack([0.07 * np.cos(a[::4]), 0.025 * np.sin(a[::4]), 0 * a[::4]], 1)
    features = [
        eye + [-0.17, -0.3, -0.55],
        eye + [0.17, -0.3, -0.55],
        np.array([[-0.02, -0.3, -0.6], [0.02, -0.3, -0.6], [0.05, -0.02, -0.72], [-0.05, -0.02, -0.72]]),  # nose
        np.stack([0.11 * np.cos(a[::4]), 0.12 + 0.03 * np.sin(a[::4]), -0.6 + 0 * a[::4]], 1),  # mouth
    ]
    return outline, features


def head_masks(pose: np.ndarray, size: int = MASK) -> np.ndarray:
    """(N, size, size) float32 masks in [0, 1] for (N, 6) head poses: the face area 1, its features 0.4.

    The rotation follows `warmchat.rig.rotation_matrix`; rendered at 2x and averaged down for smooth edges.
    """
    import cv2

    from warmchat.rig import rotation_matrix

    outline, features = _head_geometry()
    big = 2 * size
    out = np.zeros((len(pose), size, size), np.float32)
    canvas = np.zeros((big, big), np.uint8)
    for i, (yaw, pitch, roll, tx, ty, scale) in enumerate(np.asarray(pose, np.float64)):
        rot = rotation_matrix(yaw, pitch, roll)
        k = big * 0.75 * (1.0 + scale)  # pixels per face height (scale is stored as scale - 1)

        def project(p: np.ndarray, rot=rot, k=k, tx=tx, ty=ty) -> np.ndarray:
            q = p @ rot.T
            return np.round((q[:, :2] + [tx, ty + 0.2]) * k + big / 2).astype(np.int32)

        canvas[:] = 0
        cv2.fillConvexPoly(canvas, cv2.convexHull(project(outline)), 255, cv2.LINE_AA)
        for feat in features:
            cv2.fillConvexPoly(canvas, cv2.convexHull(project(feat)), 100, cv2.LINE_AA)
        out[i] = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA) / 255.0
    return out


# ----- model -----------------------------------------------------------------------------------------------------
def build_model(cfg: CRHMGConfig):
    """The CRHMG network (torch), untrained."""
    import torch
    from torch import nn

    class CRHMG(nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = cfg
            self.encoder = nn.Sequential(  # (B, 1, 32, 32) -> (B, 128, 4, 4)
                nn.Conv2d(1, 32, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(32, 64, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(64, 128, 4, 2, 1),
                nn.ReLU(),
            )
            self.to_z = nn.Linear(128, cfg.d)
            self.noise_in = nn.Linear(cfg.noise_dim, cfg.d)
            self.cond_in = nn.Linear(N_COND, cfg.d)
            self.pos = nn.Parameter(torch.randn(cfg.window, cfg.d) * 0.02)
            layer = nn.TransformerEncoderLayer(
                cfg.d, cfg.heads, cfg.ff, dropout=0.1, batch_first=True, norm_first=True
            )
            self.transformer = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(cfg.d)
            self.to_latent = nn.Linear(cfg.d, 2 * cfg.latent)  # variational decoder: mu, log sigma
            self.to_pose = nn.Sequential(nn.Linear(cfg.latent, cfg.d), nn.GELU(), nn.Linear(cfg.d, 6))
            self.mask_in = nn.Linear(cfg.latent, 64 * 4 * 4)
            self.mask_out = nn.Sequential(  # (B*N, 64, 4, 4) -> (B*N, 1, 32, 32) logits
                nn.ConvTranspose2d(64, 32, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(32, 16, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(16, 1, 4, 2, 1),
            )
            # Posterior over the noise codes, used in training only: reads the real window's poses.
            self.posterior = nn.Sequential(
                nn.Conv1d(6 + N_COND, 64, 5, padding=2),
                nn.GELU(),
                nn.Conv1d(64, 64, NOISE_STEP, stride=NOISE_STEP),
                nn.GELU(),
                nn.Conv1d(64, 2 * cfg.noise_dim, 1),
            )
            causal = torch.triu(torch.full((cfg.window, cfg.window), float("-inf")), diagonal=1)
            self.register_buffer("causal", causal, persistent=False)

        def encode(self, masks):  # (B, 32, 32) -> (B, d)
            return self.to_z(self.encoder(masks[:, None]).mean(dim=(2, 3)))

        def noise_posterior(self, pose, cond):  # (B, N, 6), (B, N, C) -> mu, logvar (B, N / 8, noise_dim)
            h = self.posterior(torch.cat([pose, cond], -1).transpose(1, 2)).transpose(1, 2)
            return h.chunk(2, dim=-1)

        def forward(self, masks, cond, codes, eps: float = 1.0, sample: bool = False):
            """masks (B, 32, 32) before the window, cond (B, N, C), codes (B, N / 8, noise_dim) ->
            pose (B, N, 6) normalised, mask logits (B, N, 32, 32) or None, and the decoder's (mu, logvar)."""
            n = cond.shape[1]
            eta = upsample_codes(codes, n)
            tokens = self.encode(masks)[:, None] + eps * self.noise_in(eta) + self.pos[:n] + self.cond_in(cond)
            h = self.norm(self.transformer(tokens, mask=self.causal[:n, :n], is_causal=True))
            mu, logvar = self.to_latent(h).chunk(2, dim=-1)
            latent = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
            return self.to_pose(latent), latent, (mu, logvar)

        def masks_from(self, latent):  # (B, N, latent) -> (B, N, 32, 32) logits
            b, n = latent.shape[:2]
            x = self.mask_in(latent.reshape(b * n, -1)).reshape(b * n, 64, 4, 4)
            return self.mask_out(x).reshape(b, n, MASK, MASK)

    return CRHMG()


def upsample_codes(codes, n: int):
    """(B, M, D) noise codes, one per NOISE_STEP frames -> (B, n, D) linearly interpolated per frame."""
    import torch

    m = codes.shape[1]
    pos = (torch.arange(n, dtype=codes.dtype) + 0.5) / NOISE_STEP - 0.5
    lo = pos.floor().clamp(0, m - 1).long()
    hi = (lo + 1).clamp(max=m - 1)
    w = (pos - lo).clamp(0, 1)[None, :, None]
    return codes[:, lo] * (1 - w) + codes[:, hi] * w


@load_once
def load_crhmg(path: str | None = None):
    """The trained CRHMG (torch, eval mode, CPU) and its calibration, from `checkpoints/crhmg.pt` by default."""
    import torch

    source = Path(path) if path else checkpoint("crhmg.pt")
    if not source.is_file():
        raise FileNotFoundError(
            f"CRHMG checkpoint not found at {source}; train it with `python -m warmchat.tools.train_crhmg` "
            "(needs the motion_tracks checkpoint)"
        )
    state = torch.load(source, map_location="cpu", weights_only=False)
    model = build_model(CRHMGConfig(**state["config"]))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    model.eval()
    log.info("loaded CRHMG head-motion model from %s", source)
    cal = state["calibration"]
    return model, Calibration(float(cal["drift_s"]), np.asarray(cal["tau_s"]), np.asarray(cal["gain"]))


@dataclass(frozen=True)
class Calibration:
    """Output calibration fitted on the real tracks after training (`train_crhmg.calibrate`).

    Trained on twelve short clips, the network separates the roles only weakly, and nothing in clips of 3-34 s
    says where a head should be after minutes. So its output goes through: a very slow causal high-pass
    (`drift_s`: no wandering over minutes), then per role (listening, speaking) and axis a causal critically
    damped low-pass (`tau_s`: the real tracks' velocity for their amplitude) and a gain (their amplitude); the two
    roles are blended frame by frame by the speaking condition.
    """

    drift_s: float
    tau_s: np.ndarray  # (2, 6) seconds; row 0 listening, row 1 speaking
    gain: np.ndarray  # (2, 6)

    def apply(
        self, norm: np.ndarray, speaking: np.ndarray, resume: CalibrationState | None = None, final: int = 0
    ) -> np.ndarray:
        """(T, 6) calibrated normalised pose from (T, 6) raw output and (T,) speaking weights.

        The low-pass's time constant and the gain move with the speaking weight frame by frame (blending two
        differently filtered signals instead would jump when the role changes).

        resume: the filters' outputs up to a frame whose inputs have not changed since (`CalibrationState`): the
            per-frame recursion restarts there, so a turn costs its own frames, not the whole conversation's.
            The drift high-pass is recomputed whole (vectorised, and its values before a frame do not depend on
            the length), so the result is the same to the bit as without `resume`.
        final: frames whose inputs will not change any more: `resume` keeps the passes up to here for next time.
        """
        x = norm - one_pole(norm, self.drift_s, rest=True)
        w = np.asarray(speaking, np.float64)[:, None]
        tau = (1 - w) * self.tau_s[0] + w * self.tau_s[1]  # (T, 6)
        a = np.where(tau > 0, np.exp(-1.0 / (np.maximum(tau, 1e-6) * FPS)), 0.0)
        start = min(resume.frames, len(x)) if resume is not None else 0
        passes = []
        for p in range(2):  # two passes: critically damped
            y = np.empty_like(x)
            if start:
                y[:start] = resume.passes[p][:start]
            prev = y[start - 1] if start else x[0]
            for t in range(start, len(x)):
                prev = a[t] * prev + (1 - a[t]) * x[t]
                y[t] = prev
            passes.append(y)
            x = y
        if resume is not None and final > resume.frames:
            resume.passes = (passes[0][:final].copy(), passes[1][:final].copy())
        return x * ((1 - w) * self.gain[0] + w * self.gain[1])


@dataclass
class CalibrationState:
    """Both low-pass passes' outputs over the frames whose inputs are final (see `Calibration.apply`)."""

    passes: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros((0, 6)), np.zeros((0, 6))))

    @property
    def frames(self) -> int:
        """The passes are kept (final) up to this frame."""
        return len(self.passes[0])


def one_pole(x: np.ndarray, tau_s: float, rest: bool = False, fps: float = FPS) -> np.ndarray:
    """Causal one-pole low-pass over time (axis 0), time constant `tau_s`; starts at 0 (`rest`) or at x[0].

    y[t] = a y[t-1] + (1 - a) x[t], solved in closed form a block at a time (scipy.signal.lfilter computes the same
    to ~1e-13, but importing scipy.signal costs ~0.5 s of start-up, and a Python loop over frames is slow on long
    conversations). Frame t depends only on frames <= t and comes out the same whatever the length of `x`.
    """
    if tau_s <= 0:
        return np.zeros_like(x) if rest else x
    decay = 1.0 / (tau_s * fps)  # a = exp(-decay)
    a = np.exp(-decay)
    block = max(1, int(30.0 / decay))  # a ** -block <= e**30: the scaled sums below stay far from overflow
    grow = np.exp(decay * np.arange(block)).reshape(-1, *[1] * (np.ndim(x) - 1))  # a ** -j, the same for every block
    x = np.asarray(x, np.float64)
    y = np.empty_like(x)
    prev = np.zeros_like(x[:1]) if rest else x[:1]  # the output before the block
    for t0 in range(0, len(x), block):
        chunk, g = x[t0 : t0 + block], grow[: len(x) - t0]
        # y[t0 + j] = a ** (j + 1) * prev + (1 - a) * sum_{i <= j} a ** (j - i) * chunk[i]
        y[t0 : t0 + len(chunk)] = (a * prev + (1 - a) * np.cumsum(chunk * g, axis=0)) / g
        prev = y[t0 + len(chunk) - 1 : t0 + len(chunk)]
    return y


# ----- generation ------------------------------------------------------------------------------------------------
@dataclass
class HeadState:
    """One person's generated head motion so far: finished windows, cached so streaming calls only add new ones."""

    seed: int
    eps: float = 1.0
    windows: list[np.ndarray] = field(default_factory=list)  # (WINDOW, 6) normalised pose of each final window
    calibrated: CalibrationState = field(default_factory=CalibrationState)  # the checkpoint calibration's filters


def window_codes(seed: int, k: int, noise_dim: int):
    """The controlled noise of window k: a pure function of (seed, k)."""
    rng = np.random.default_rng([seed, k])
    return rng.standard_normal((WINDOW // NOISE_STEP, noise_dim)).astype(np.float32)


def generate_head(
    state: HeadState,
    cond: np.ndarray,
    known: int,
    n_frames: int,
    checkpoint: str | None = None,
    calibration: Calibration | None = None,
) -> np.ndarray:
    """Head pose for frames [0, n_frames) at 25 fps.

    Args:
        state: the person's cache (updated in place with windows that are now final).
        cond: (>= known, 3) conditions per frame: speaking 0..1, arousal -1..1, voice level 0..1; rows at and
            after `known` are not read (those frames are not known yet).
        known: frames whose conditions are final; output frames < known are final too.
        n_frames: frames wanted (<= known).
        checkpoint: weights to use (default `checkpoints/crhmg.pt`).
        calibration: instead of the checkpoint's (used while fitting it).
    Returns:
        (n_frames, 6) yaw, pitch, roll (rad), tx, ty (face heights), scale (1 = rest).
    """
    import torch

    model, calib = load_crhmg(checkpoint)
    calib = calibration or calib
    cond = np.asarray(cond[:known], np.float32)
    n_windows = -(-n_frames // HOP)
    norm = np.zeros((max(n_windows - 1, 0) * HOP + WINDOW if n_windows else 0, 6), np.float32)  # (N, 6)
    last = np.zeros((1, 6), np.float32)  # rest pose before the first window
    for k in range(n_windows):
        start = k * HOP
        if k < len(state.windows):
            out = state.windows[k]
        else:
            c = np.zeros((WINDOW, N_COND), np.float32)
            have = cond[start : start + WINDOW]
            c[: len(have)] = have
            if len(have) < WINDOW:  # causal attention: padding frames cannot change the frames before them
                c[len(have) :] = have[-1] if len(have) else 0.0
            mask = head_masks(last * POSE_UNIT)
            codes = window_codes(state.seed, k, model.cfg.noise_dim)
            with torch.inference_mode():
                pose, _, _ = model(
                    torch.from_numpy(mask), torch.from_numpy(c)[None], torch.from_numpy(codes)[None], state.eps
                )
            out = pose[0].numpy()
            if start + WINDOW <= known:
                state.windows.append(out)
        if k > 0:  # cross-fade the overlap with the previous window
            ov = WINDOW - HOP
            w = _fade(ov)[:, None]
            norm[start : start + ov] = norm[start : start + ov] * (1 - w) + out[:ov] * w
            norm[start + ov : start + WINDOW] = out[ov:]
        else:
            norm[:WINDOW] = out
        last = norm[start + HOP - 1 : start + HOP]
    speaking = np.zeros(len(norm), np.float32)
    speaking[: min(len(norm), known)] = cond[: len(norm), 0]
    # A frame's raw pose is final once every window over it is, and its condition once it is known: the filters
    # resume from there on the next call (only with the checkpoint's own calibration, which the state belongs to).
    resume = state.calibrated if calibration is None else None
    pose = calib.apply(norm, speaking, resume, final=min(len(state.windows) * HOP, known))[:n_frames] * POSE_UNIT
    pose *= _fade(EASE_IN)[np.minimum(np.arange(n_frames), EASE_IN - 1), None]  # start from the portrait's pose
    pose[:, 5] += 1.0
    return pose


def _fade(n: int) -> np.ndarray:
    x = (np.arange(n) + 0.5) / n
    return x * x * (3 - 2 * x)
