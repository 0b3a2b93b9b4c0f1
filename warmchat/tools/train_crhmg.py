"""Train CRHMG (warmchat/motion/crhmg.py) on the real head-pose tracks in checkpoints/motion_tracks/.

    python -m warmchat.tools.train_crhmg [--steps 2500] [--out checkpoints/crhmg.pt]

A conditional VAE over 64-frame windows: the encoder sees the head mask of the frame before the window, the
posterior sees the real window, and the decoder must give back its poses and masks. Augmentation: mirroring
(yaw, roll, tx flip), amplitude x0.8-1.2 and tempo x0.85-1.15. After training, a per-axis gain is calibrated so
that generated amplitude matches the real tracks (measured over both roles), and stored with the weights.
Takes about 3-5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from warmchat.motion.crhmg import (
    NOISE_STEP,
    POSE_UNIT,
    WINDOW,
    CRHMGConfig,
    HeadState,
    build_model,
    head_masks,
)
from warmchat.motion.stats import RealClip, load_real_clips, pooled_stats, role_segments
from warmchat.paths import CHECKPOINTS

log = logging.getLogger(__name__)
MASK_FRAMES = 8  # frames per window whose masks are decoded in the loss (masks cost more than poses)


def sample_batch(clips: list[RealClip], batch: int, rng: np.random.Generator):
    """Context masks (B, 32, 32), conditions (B, N, 3), target poses (B, N, 6) normalised, with augmentation."""
    lengths = np.array([len(c.pose) for c in clips], float)
    ctx, conds, targets = [], [], []
    while len(targets) < batch:
        clip = clips[rng.choice(len(clips), p=lengths / lengths.sum())]
        tempo = rng.uniform(0.85, 1.15)
        need = int(np.ceil((WINDOW + 1) * tempo)) + 1
        if len(clip.pose) <= need:
            continue
        s = rng.integers(0, len(clip.pose) - need)
        t = s + np.arange(WINDOW + 1) * tempo
        pose = np.stack([np.interp(t, np.arange(len(clip.pose)), clip.pose[:, j]) for j in range(6)], 1)
        cond = np.stack([np.interp(t, np.arange(len(clip.cond)), clip.cond[:, j]) for j in range(3)], 1)
        pose *= rng.uniform(0.8, 1.2)
        if rng.random() < 0.5:
            pose[:, [0, 2, 3]] *= -1
        norm = pose / POSE_UNIT
        ctx.append(norm[0])
        targets.append(norm[1:])
        conds.append(cond[1:])
    ctx_masks = head_masks(np.array(ctx) * POSE_UNIT)
    return ctx_masks, np.array(conds, np.float32), np.array(targets, np.float32)


def train(clips: list[RealClip], steps: int, seed: int = 0, batch: int = 16):
    import torch
    import torch.nn.functional as Fn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = CRHMGConfig()
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for step in range(steps):
        masks, cond, target = (torch.from_numpy(x) for x in sample_batch(clips, batch, rng))
        mu_n, logvar_n = model.noise_posterior(target, cond)
        codes = mu_n + torch.randn_like(mu_n) * (0.5 * logvar_n).exp()
        pose, latent, (mu, logvar) = model(masks, cond, codes, sample=True)
        rec = Fn.mse_loss(pose, target)
        vel = Fn.mse_loss(pose.diff(dim=1), target.diff(dim=1)) * 25
        pick = torch.from_numpy(rng.choice(WINDOW, MASK_FRAMES, replace=False))
        mask_target = torch.from_numpy(head_masks(target[:, pick].reshape(-1, 6).numpy() * POSE_UNIT))
        logits = model.masks_from(latent[:, pick]).reshape(-1, *mask_target.shape[1:])
        mask_loss = Fn.binary_cross_entropy_with_logits(logits, mask_target)
        kl_noise = (-0.5 * (1 + logvar_n - mu_n**2 - logvar_n.exp())).sum(-1).mean() / NOISE_STEP
        kl_dec = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(-1).mean()
        loss = rec + vel + mask_loss + 0.01 * kl_noise + 1e-3 * kl_dec
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log.info(
                "step %d  rec %.3f  vel %.3f  mask %.3f  kl_noise %.2f  kl_dec %.2f  (%.0f s)",
                step, rec.item(), vel.item(), mask_loss.item(), kl_noise.item(), kl_dec.item(), time.time() - t0,
            )  # fmt: skip
    model.eval()
    return model, cfg


DRIFT_S = 20.0  # the high-pass of the calibration: heads return to their rest pose over about this long
TAUS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25)


def role_conditions(speaking: bool, n: int) -> np.ndarray:
    """(n, 3) conditions of one role: for speaking, a voice rising and falling at about syllable-group rate."""
    cond = np.zeros((n, 3), np.float32)
    cond[:, 0] = float(speaking)
    if speaking:
        cond[:, 2] = 0.5 * (1 + np.sin(np.arange(n) / 25 * 2 * np.pi * 0.7))
    return cond


def calibrate(clips: list[RealClip], checkpoint: Path, n: int = 1500) -> dict:
    """Fit `crhmg.Calibration` so that each role's generated motion has the real tracks' rhythm (velocity for its
    amplitude, per axis) and amplitude (rotations: std in 5 s windows; translations and scale: std)."""
    from warmchat.motion import crhmg

    tau = np.zeros((2, 6))
    gain = np.ones((2, 6))
    for role in (0, 1):
        cond = role_conditions(bool(role), n)
        raw = []
        for seed in range(4):
            ident = crhmg.Calibration(0.0, np.zeros((2, 6)), np.ones((2, 6)))
            with_drift = crhmg.Calibration(DRIFT_S, np.zeros((2, 6)), np.ones((2, 6)))
            pose = crhmg.generate_head(HeadState(seed=seed), cond, n, n, str(checkpoint), ident)
            pose[:, 5] -= 1.0
            pose /= crhmg.POSE_UNIT
            raw.append(with_drift.apply(pose, cond[:, 0]))
        real = role_segments(clips, bool(role))
        real_stats = pooled_stats(real)
        for j, axis in enumerate(("yaw", "pitch", "roll")):
            target = real_stats[axis]["velocity_deg_s"] / real_stats[axis]["amplitude_deg"]

            def rhythm(t: float, raw=raw, axis=axis) -> float:
                st = pooled_stats([crhmg.one_pole(crhmg.one_pole(p, t), t) * crhmg.POSE_UNIT for p in raw])[axis]
                return st["velocity_deg_s"] / st["amplitude_deg"]

            tau[role, j] = min(TAUS, key=lambda t: abs(np.log(rhythm(t) / target)))
            smoothed = [crhmg.one_pole(crhmg.one_pole(p, tau[role, j]), tau[role, j]) * crhmg.POSE_UNIT for p in raw]
            gain[role, j] = real_stats[axis]["amplitude_deg"] / pooled_stats(smoothed)[axis]["amplitude_deg"]
        tau[role, 3:] = np.median(tau[role, :3])
        real_std = np.mean([seg[:, 3:].std(axis=0) for seg in real], axis=0)
        smoothed = [crhmg.one_pole(crhmg.one_pole(p[:, 3:], tau[role, 3]), tau[role, 3]) for p in raw]
        gen_std = np.mean([s.std(axis=0) for s in smoothed], axis=0) * crhmg.POSE_UNIT[3:]
        gain[role, 3:] = real_std / np.maximum(gen_std, 1e-6)
    return {"drift_s": DRIFT_S, "tau_s": tau.tolist(), "gain": np.clip(gain, 0.25, 4.0).tolist()}


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m warmchat.tools.train_crhmg", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CHECKPOINTS / "crhmg.pt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)  # a second thread gains little on small matrices and stalls on a busy machine
    clips = load_real_clips()
    log.info("training on %d clips, %d frames at 25 fps", len(clips), sum(len(c.pose) for c in clips))
    model, cfg = train(clips, args.steps, args.seed)
    state = {
        "config": asdict(cfg),
        "model": {k: v.half() for k, v in model.state_dict().items()},
        "calibration": {"drift_s": 0.0, "tau_s": np.zeros((2, 6)).tolist(), "gain": np.ones((2, 6)).tolist()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    from warmchat.motion import crhmg

    crhmg.load_crhmg.cache_clear()
    state["calibration"] = calibrate(clips, args.out)
    torch.save(state, args.out)
    crhmg.load_crhmg.cache_clear()
    log.info("calibration %s; saved %s (%.1f MB)", state["calibration"], args.out, args.out.stat().st_size / 1e6)
    for role in (True, False):
        cond = role_conditions(role, 1500)
        gen = [crhmg.generate_head(HeadState(seed=s), cond, 1500, 1500, str(args.out)) for s in range(3)]
        log.info("%s real %s", "speaking" if role else "listening", pooled_stats(role_segments(clips, role)))
        log.info("%s gen  %s", "speaking" if role else "listening", pooled_stats(gen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
