"""Train the audio-to-mouth models (warmchat/motion/lipsync.py) on real talking faces, with held-out figures.

    python -m warmchat.tools.train_lipsync [--model phonetic|mel] [--extract ../shared/data/talking_clips] [--folds 5]

Training pairs are real: the soundtracks of 19 talking-face clips (the speakers' own voices) against the mouths
measured on their video by the project's tracker (`--extract` writes these derived tracks, checkpoints/talking_tracks/,
with the soundtrack's log-mel and Whisper-encoder inputs; the videos are never needed again). The jaw target is the
clip's inner-lip gap, the other outputs the fitted rig controls (rounding, spreading, press, lip corners).

- phonetic (default, `lipsync_phonetic.npz`): ridge regression on the Whisper encoder's components. Its context,
  penalty and output delay are chosen by an inner speaker-level cross-validation inside each training part, so the
  held-out figures never saw their clips, not even to pick a setting. The encoder's projection (`lipsync_basis.npz`)
  is a PCA of the two offline voices reading LINES, no real clip; `--basis` refits it (then re-extract the tracks'
  encoder inputs with `--encode CLIPS_DIR`).
- mel (fallback without faster-whisper, `lipsync.pt`): the CNN, fine-tuned from the synthetic pre-training (the
  offline voices against the phoneme-driven mouth, `checkpoints/lipsync_synthetic.pt`, or `--pretrain-steps`).

Reported: per clip, by speaker-level cross-validation (no speaker is ever in both the training and the test part of a
fold), the protocol's correlation with the real lip gap (Pearson, best lag within +-3 frames, 5 frames trimmed at each
end), the best lag and the closure recall. The final checkpoint trains on all clips.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np

from warmchat.motion.lipsync import (
    BASIS_FILE,
    ENC_DIM,
    N_OUT,
    OPEN_JAW,
    PHONETIC_FILE,
    TALKING_TRACKS,
    TRACK_CONTROLS,
    TRIM,
    PhoneticMouth,
    TalkingTrack,
    build_model,
    encoder_inputs,
    lagged_correlation,
    line_inputs,
    load_talking_track,
    phonetic_inputs,
    predict_mouth,
    stack_context,
    whisper_encoding,
)
from warmchat.motion.speaker import coarticulate, loudness_gain, segment_features, segment_frames
from warmchat.paths import CHECKPOINTS
from warmchat.schema import Turn

log = logging.getLogger(__name__)

LINES = [
    "Hello there, it is so good to see you again.",
    "I missed you too, but I have some bad news about my old job.",
    "Would you pass me the blue cup, please?",
    "We walked along the beach until the sun went down.",
    "My brother bought a boat and painted it bright purple.",
    "Please put the big box by the back door.",
    "Who knew the moon could look so huge tonight?",
    "I think we should leave before the weather gets worse.",
    "Maybe we could meet for lunch on Monday or Tuesday.",
    "The museum was closed, so we went to the park instead.",
    "She opened the window and the cold air rushed in.",
    "Why would anyone throw away a perfectly good umbrella?",
    "Honestly, I have never been so surprised in my whole life.",
    "We need more milk, bread, and a few apples.",
    "Could you help me move this heavy table upstairs?",
    "The train was late again, and everybody was furious.",
    "Thank you for the lovely flowers, they smell wonderful.",
    "I am afraid the results are not what we hoped for.",
    "Remember when we got lost in the woods as kids?",
    "Bob and Mary moved to Boston last May.",
    "Let me see what I can do about the broken phone.",
    "Your idea is brilliant, we should start tomorrow morning.",
    "Who told you that? It sounds completely made up.",
    "Food at the new place was awful, and the music was too loud.",
    "Good morning! Did you sleep well?",
    "Two coffees and one tea, please, with a little sugar.",
    "I will be there in five minutes, just wait for me.",
    "Nobody believed me when I said we would win.",
    "Wow, look at all those bubbles floating over the pool!",
    "The problem is that nobody reads the manual.",
    "My mother always said patience pays off.",
    "Do you remember the name of that beautiful village?",
    "We could paint the room blue, or maybe pale yellow.",
    "It was a very long week and I am really tired.",
    "Please believe me, I never meant to hurt you.",
    "The view from the mountain top was amazing.",
    "Few people know how to fix a bicycle properly.",
    "Why do you always move my books without asking?",
    "Our flight leaves at seven, so we must be quick.",
    "I love the smell of fresh bread in the morning.",
]
HELD_OUT = 8  # the last lines are never trained on
NOSE_TIP = 1
TYPICAL_JAW = OPEN_JAW  # jawOpen of a clip's wide-open (95th percentile) speech: the phoneme route's open vowels
CROP = 64  # frames per training crop
CORR_WEIGHT = 1.0  # weight of the jaw's (1 - Pearson r) in the training loss
CLOSED_FRACTION = 0.15  # a real frame is closed below this fraction of its clip's 95th-percentile lip gap
CLOSED_JAW = 0.07  # a predicted frame is closed below this jawOpen (about the same fraction of TYPICAL_JAW)
# Speaker of each clip where several clips show one person (the GRID samples: compared by eye on their first frames).
SPEAKERS: dict[str, str] = {}
EMOTIONS_USED = ("neutral", "happy", "sad", "angry", "surprised")


def synthesize_lines(voices: tuple[str, ...]) -> list[dict]:
    """Audio features and phoneme-model mouth targets for every line, voice and (rotating) emotion."""
    from warmchat.speech import voice_turn
    from warmchat.timeline import build_timeline

    out = []
    t0 = time.time()
    for voice in voices:
        for i, text in enumerate(LINES):
            emotion = EMOTIONS_USED[i % len(EMOTIONS_USED)]
            turn = Turn("A", text, emotion, 0.8)
            utt = voice_turn(turn, i, voice, seed=i)
            timeline = build_timeline([turn], [utt])
            seg = timeline.segments[0]
            a, feats = segment_features(seg, timeline)
            f0, f1 = segment_frames(seg, timeline.fps)
            target = np.zeros((len(feats), 6), np.float32)
            target[f0 - a : f0 - a + f1 - f0] = coarticulate(utt.phonemes, utt.duration, f1 - f0, timeline.fps)
            target[:, 0] *= loudness_gain(feats.energy_db)
            out.append(
                {"voice": voice, "line": i, "x": line_inputs(feats), "y": np.clip(target, 0, 1), "feats": feats}
            )
        log.info("voice %s: %d lines synthesised (%.0f s)", voice, len(LINES), time.time() - t0)
    return out


# ----- real clips: derived mouth tracks ----------------------------------------------------------------------------
def mouth_measures(lm: np.ndarray) -> tuple[float, float, float]:
    """(inner-lip gap, lip-corner width, nose-to-chin distance) of one face, each a fraction of its face height."""
    from warmchat import face as F
    from warmchat.render.fidelity import face_height, lip_gap

    h = face_height(lm)
    width = np.linalg.norm(lm[F.MOUTH_CORNER_R, :2] - lm[F.MOUTH_CORNER_L, :2]) / h
    jaw = np.linalg.norm(lm[F.CHIN, :2] - lm[NOSE_TIP, :2]) / h
    return lip_gap(lm), float(width), float(jaw)


def extract_talking_clip(video: Path, speaker: str) -> TalkingTrack:
    """Measured mouth (gap, width, jaw, fitted rig mouth controls) and audio features of one real talking clip."""
    from warmchat.controls import INDEX
    from warmchat.tools.extract_motion import extract_motion, read_audio, read_video, track_landmarks

    frames, fps = read_video(video)
    tracked = track_landmarks(frames)
    audio = read_audio(video, 16000)
    tracks = extract_motion(frames, fps, audio, 16000, tracked=tracked)
    del frames
    measures = np.zeros((len(tracked), 3), np.float32)
    for i, lm in enumerate(tracked):
        if lm is not None:
            measures[i] = mouth_measures(lm)
    found = tracks.found
    t = np.arange(len(found))
    for j in range(3):  # frames where the tracker lost the face: interpolated, and marked in `found`
        measures[~found, j] = np.interp(t[~found], t[found], measures[found, j])
    return TalkingTrack(
        name=video.stem,
        speaker=speaker,
        fps=tracks.fps,
        gap=measures[:, 0],
        width=measures[:, 1],
        jaw=measures[:, 2],
        controls=tracks.controls[:, [INDEX[c] for c in TRACK_CONTROLS]],
        found=found,
        mel=tracks.mel,
        energy_db=tracks.energy_db,
        f0=tracks.f0,
        enc=encoder_inputs(audio, 16000, len(found), tracks.fps),
    )


def extract_talking_clips(clips: Path, out: Path) -> None:
    """Write `out/NAME.npz` for every clip in `clips/manifest.tsv` (speaker from SPEAKERS)."""
    out.mkdir(parents=True, exist_ok=True)
    for row in read_manifest(clips):
        target = out / f"{row['name']}.npz"
        if target.exists():
            continue
        t0 = time.time()
        track = extract_talking_clip(clips / f"{row['name']}.mp4", SPEAKERS.get(row["name"], row["name"]))
        track.save(target)
        log.info("%s: %d frames (%.0f s)", row["name"], len(track.gap), time.time() - t0)


def encode_talking_clips(clips: Path, tracks_dir: Path) -> None:
    """Recompute the encoder inputs (`enc`) of every track in `tracks_dir` from its clip's soundtrack."""
    from dataclasses import replace

    from warmchat.tools.extract_motion import read_audio

    for path in sorted(tracks_dir.glob("*.npz")):
        track = load_talking_track(path)
        audio = read_audio(clips / f"{track.name}.mp4", 16000)
        replace(track, enc=encoder_inputs(audio, 16000, len(track.gap), track.fps)).save(path)
        log.info("%s: encoder inputs", track.name)


def read_manifest(clips: Path) -> list[dict[str, str]]:
    lines = (clips / "manifest.tsv").read_text(encoding="utf-8").strip().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


# ----- training on the real clips ----------------------------------------------------------------------------------
def real_items(tracks: list[TalkingTrack]) -> list[dict]:
    """Model inputs and targets of real clips: the fitted mouth controls, jawOpen replaced by the clip's own lip gap.

    The gap is what the evaluation measures and what a viewer sees; it is rescaled per clip (closed at its 5th
    percentile, TYPICAL_JAW at its 95th) since how wide a person opens is theirs, not the sound's.
    """
    out = []
    for tr in tracks:
        y = np.clip(tr.controls.copy(), 0, 1)
        lo, hi = np.percentile(tr.gap, [5, 95])
        y[:, 0] = np.clip((tr.gap - lo) / max(hi - lo, 1e-3) * TYPICAL_JAW, 0, 1)
        out.append({"name": tr.name, "speaker": tr.speaker, "x": line_inputs(tr.features), "y": y.astype(np.float32)})
    return out


def train(items: list[dict], steps: int, seed: int = 0, init: dict | None = None, lr: float = 2e-3):
    """A model trained on `items` (dicts with x (T, N_IN) and y (T, N_OUT)); starts from `init` weights if given."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model()
    if init is not None:
        model.load_state_dict(init)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    n = CROP  # frames per training crop
    weights = np.array([len(it["x"]) for it in items], float) ** 0.5  # short clips count, long ones count more
    weights /= weights.sum()
    for step in range(steps):
        xs, ys = [], []
        for _ in range(16):
            item = items[rng.choice(len(items), p=weights)]
            x, y = item["x"], item["y"]
            s = rng.integers(0, max(len(x) - n, 0) + 1)
            xc, yc = np.zeros((n, x.shape[1]), np.float32), np.zeros((n, N_OUT), np.float32)
            xc[:] = x[-1]  # pad with the clip's last frame
            m = min(n, len(x) - s)
            xc[:m], yc[:m] = x[s : s + m], y[s : s + m]
            xc[:, :-1] *= rng.uniform(0.8, 1.2)  # timbre / level robustness
            xc[:, :-1] += rng.normal(0, 0.05, xc[:, :-1].shape)
            xc[:, -1] += rng.normal(0, 0.1)
            xs.append(xc.T)
            ys.append(yc.T)
        x = torch.from_numpy(np.array(xs))
        y = torch.from_numpy(np.array(ys))
        pred = model(x)
        loss = ((pred - y) ** 2).mean() + ((pred.diff(dim=2) - y.diff(dim=2)) ** 2).mean()
        # The jaw's shape over time matters more than its level: add 1 - Pearson r per crop.
        pj, yj = pred[:, 0] - pred[:, 0].mean(1, keepdim=True), y[:, 0] - y[:, 0].mean(1, keepdim=True)
        r = (pj * yj).sum(1) / (pj.norm(dim=1) * yj.norm(dim=1) + 1e-6)
        loss = loss + CORR_WEIGHT * (1 - r).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            log.info("step %d loss %.4f", step, loss.item())
    model.eval()
    return model


def folds(tracks: list[TalkingTrack], k: int) -> list[list[str]]:
    """Speakers split into k groups, longest first round-robin, so each fold holds out about the same amount."""
    length: dict[str, int] = {}
    for tr in tracks:
        length[tr.speaker] = length.get(tr.speaker, 0) + len(tr.gap)
    order = sorted(length, key=lambda sp: -length[sp])
    return [order[i::k] for i in range(k)]


def closure_recall(jaw: np.ndarray, gap: np.ndarray, trim: int = TRIM) -> tuple[float, int]:
    """(fraction of the real closed frames where the predicted mouth is closed too, number of real closed frames).

    Closed, real: inner-lip gap below CLOSED_FRACTION of the clip's 95th-percentile gap. Closed, predicted: jawOpen
    below CLOSED_JAW. Both at lag 0, ends trimmed as in the correlation protocol.
    """
    gap, jaw = gap[trim : len(gap) - trim], jaw[trim : len(gap) - trim]
    closed = gap < CLOSED_FRACTION * np.percentile(gap, 95)
    if not closed.any():
        return float("nan"), 0
    return float((jaw[closed] < CLOSED_JAW).mean()), int(closed.sum())


def cross_validate(
    tracks: list[TalkingTrack], steps: int, k: int, init: dict | None, save_dir: Path | None = None
) -> dict[str, dict]:
    """Held-out figures per clip: each fold's model never saw any clip of the held-out speakers.

    Args:
        save_dir: where to keep each fold's model (`fold_<i>.pt`), named per clip in the result's "model".
    """
    import torch

    items = real_items(tracks)
    out = {}
    for i, held in enumerate(folds(tracks, k)):
        model = train([it for it in items if it["speaker"] not in held], steps, init=init)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), save_dir / f"fold_{i}.pt")
        for tr in tracks:
            if tr.speaker in held:
                jaw = predict_mouth(model, tr.features)[:, 0]
                r, lag = lagged_correlation(jaw, tr.gap)
                recall, n_closed = closure_recall(jaw, tr.gap)
                out[tr.name] = {"r": round(r, 3), "lag": lag, "closure_recall": round(recall, 3), "closed": n_closed}
                if save_dir is not None:
                    out[tr.name]["model"] = str(save_dir / f"fold_{i}.pt")
        log.info("fold %d (%s) done", i, ", ".join(held))
    return out


# ----- the phonetic model -------------------------------------------------------------------------------------------
CONTEXTS = (2, 4, 6)  # frames stacked either side, chosen by the inner cross-validation
ALPHAS = (0.3, 1.0, 3.0)  # ridge penalty per training frame (inputs are about unit scale)
DELAYS = (0, 1, 2)  # output delays in frames
SILENCES_DB = (40.0, 60.0)  # below the line's loudest: closed (40 as the mel model; 60 about only digital silence)


def fit_basis() -> dict[str, np.ndarray]:
    """PCA of the encoder output on the offline voices reading LINES (no real clip): center, axes, spread."""
    from warmchat.speech import voice_turn
    from warmchat.speech.audio import resample

    frames = []
    for voice in ("hibari", "piper-joe"):
        pcm = []
        for i, text in enumerate(LINES):
            utt = voice_turn(Turn("A", text, EMOTIONS_USED[i % len(EMOTIONS_USED)], 0.8), i, voice, seed=i)
            pcm += [resample(utt.audio, utt.sample_rate, 16000), np.zeros(4000, np.float32)]
        enc = whisper_encoding(np.concatenate(pcm))
        frames.append(enc)
        log.info("basis: voice %s, %d encoder frames", voice, len(enc))
    x = np.concatenate(frames)
    center = x.mean(0)
    _, sv, vt = np.linalg.svd(x - center, full_matrices=False)
    return {"center": center, "axes": vt[:ENC_DIM].T, "spread": sv[:ENC_DIM] / np.sqrt(len(x) - 1)}


def phonetic_stats(items: list[dict], context: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per clip, the ridge regression's sufficient statistics (X'X, X'Y) with `context` frames stacked."""
    out = []
    for it in items:
        x = stack_context(it["xp"], context).astype(np.float64)
        out.append((x.T @ x, x.T @ it["y"]))
    return out


def ridge(stats: list[tuple[np.ndarray, np.ndarray]], alpha: float, frames: int) -> np.ndarray:
    """Weights from summed statistics; the intercept (last input) is not penalised."""
    gram = sum(g for g, _ in stats)
    cross = sum(c for _, c in stats)
    penalty = np.full(len(gram), alpha * frames)
    penalty[-1] = 0.0
    return np.linalg.solve(gram + np.diag(penalty), cross).astype(np.float32)


def _delayed(y: np.ndarray, delay: int) -> np.ndarray:
    return np.concatenate([np.repeat(y[:1], delay, 0), y[: len(y) - delay]]) if delay else y


def _lag0(pred: np.ndarray, real: np.ndarray) -> float:
    return lagged_correlation(pred, real, max_lag=0)[0]


def _gated(jaw: np.ndarray, energy_db: np.ndarray, silence_db: float) -> np.ndarray:
    return np.where(energy_db < max(float(energy_db.max()) - silence_db, -70.0), 0.0, jaw)


def choose_setting(items: list[dict], tracks: list[TalkingTrack], k: int = 4) -> tuple[int, float, int, float]:
    """(context, alpha, delay, silence_db) with the best mean lag-0 correlation on held-out speakers of `items`."""
    scores: dict[tuple[int, float, int, float], list[float]] = {}
    groups = folds(tracks, min(k, len(tracks)))
    for context in CONTEXTS:
        stats = phonetic_stats(items, context)
        for held in groups:
            train_idx = [i for i, it in enumerate(items) if it["speaker"] not in held]
            frames = sum(len(items[i]["y"]) for i in train_idx)
            for alpha in ALPHAS:
                w = ridge([stats[i] for i in train_idx], alpha, frames)
                for it in items:
                    if it["speaker"] not in held:
                        continue
                    jaw = np.clip(stack_context(it["xp"], context) @ w[:, 0], 0, 1)
                    for delay, silence in itertools.product(DELAYS, SILENCES_DB):
                        pred = _gated(_delayed(jaw, delay), it["db"], silence)
                        scores.setdefault((context, alpha, delay, silence), []).append(_lag0(pred, it["gap"]))
    return max(scores, key=lambda s: np.mean(scores[s]))


def train_phonetic(items: list[dict], tracks: list[TalkingTrack]) -> PhoneticMouth:
    """The phonetic model on `items`, its setting chosen by cross-validation inside them, its floor a priori.

    Floor: the jawOpen quantile of the model's own training output at the share of training frames whose target is
    closed (below CLOSED_JAW), so it shuts about as often as the real lips.
    """
    context, alpha, delay, silence_db = choose_setting(items, tracks)
    w = ridge(phonetic_stats(items, context), alpha, sum(len(it["y"]) for it in items))
    fitted = np.concatenate([_delayed(stack_context(it["xp"], context) @ w[:, 0], delay) for it in items])
    closed = float(np.mean(np.concatenate([it["y"][:, 0] for it in items]) < CLOSED_JAW))
    floor = float(np.quantile(np.clip(fitted, 0, 1), closed))
    log.info("phonetic: context %d, alpha %.1f, delay %d, floor %.3f, silence %.0f dB", context, alpha, delay, floor,
             silence_db)  # fmt: skip
    return PhoneticMouth(w, context, delay, floor, silence_db)


def phonetic_items(tracks: list[TalkingTrack]) -> list[dict]:
    items = real_items(tracks)
    for it, tr in zip(items, tracks, strict=True):
        it["xp"], it["gap"], it["db"] = phonetic_inputs(tr.enc, tr.features), tr.gap, tr.energy_db
    return items


def cross_validate_phonetic(tracks: list[TalkingTrack], k: int, save_dir: Path | None = None) -> dict[str, dict]:
    """Held-out figures per clip, as `cross_validate`, for the phonetic model (inner CV inside each training part)."""
    items = phonetic_items(tracks)
    out = {}
    for i, held in enumerate(folds(tracks, k)):
        train_tracks = [tr for tr in tracks if tr.speaker not in held]
        model = train_phonetic([it for it in items if it["speaker"] not in held], train_tracks)
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            model.save(save_dir / f"fold_{i}.npz")
        for tr in tracks:
            if tr.speaker in held:
                jaw = predict_mouth(model, tr.features, enc=tr.enc)[:, 0]
                r, lag = lagged_correlation(jaw, tr.gap)
                recall, n_closed = closure_recall(jaw, tr.gap)
                out[tr.name] = {"r": round(r, 3), "lag": lag, "closure_recall": round(recall, 3), "closed": n_closed,
                                "setting": [model.context, model.delay, model.silence_db]}  # fmt: skip
                if save_dir is not None:
                    out[tr.name]["model"] = str(save_dir / f"fold_{i}.npz")
        log.info("fold %d (%s) done", i, ", ".join(held))
    return out


def synthetic_init(pretrain_steps: int) -> dict:
    """Weights pre-trained on the offline voices against the phoneme-driven mouth (lip corners left at rest)."""
    items = synthesize_lines(("hibari", "piper-joe"))
    for it in items:
        it["y"] = np.concatenate([it["y"], np.zeros((len(it["y"]), N_OUT - 6), np.float32)], 1)
    return train(items, pretrain_steps).state_dict()


def init_from(path: Path) -> dict:
    """Starting weights from a checkpoint; one with the six mouth outputs only gets lip-corner outputs at rest."""
    import torch

    state = {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    last = max(k for k in state if k.endswith(".weight"))  # the output convolution (highest layer index)
    bias = last.replace("weight", "bias")
    missing = N_OUT - state[last].shape[0]
    if missing > 0:
        state[last] = torch.cat([state[last], torch.zeros(missing, *state[last].shape[1:])])
        state[bias] = torch.cat([state[bias], torch.full((missing,), -3.0)])  # sigmoid(-3) ~ 0.05: at rest
    return state


def report_of(held: dict[str, dict]) -> dict:
    return {
        "held_out": held,
        "mean_r": round(float(np.mean([v["r"] for v in held.values()])), 3),
        "mean_closure_recall": round(float(np.nanmean([v["closure_recall"] for v in held.values()])), 3),
        "lags": {lag: sum(v["lag"] == lag for v in held.values()) for lag in range(-3, 4)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warmchat.tools.train_lipsync", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("phonetic", "mel"), default="phonetic")
    parser.add_argument("--steps", type=int, default=300, help="mel: training steps on the real clips")
    parser.add_argument("--init", type=Path, default=CHECKPOINTS / "lipsync_synthetic.pt",
                        help="mel: pre-trained weights to fine-tune ('': start from scratch)")  # fmt: skip
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="mel: pre-train on the offline voices for this many steps instead of --init")  # fmt: skip
    parser.add_argument("--folds", type=int, default=5, help="speaker-level cross-validation folds (0: skip)")
    parser.add_argument("--tracks", type=Path, default=TALKING_TRACKS, help="derived real tracks (npz)")
    parser.add_argument("--extract", type=Path, help="first extract tracks from the clips in this folder")
    parser.add_argument("--basis", action="store_true", help="phonetic: first refit the encoder projection")
    parser.add_argument("--encode", type=Path, help="first recompute the tracks' encoder inputs from these clips")
    parser.add_argument(
        "--out", type=Path, help="checkpoint (default: checkpoints/lipsync_phonetic.npz or lipsync.pt)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.basis:
        np.savez(CHECKPOINTS / BASIS_FILE, **{k: v.astype(np.float32) for k, v in fit_basis().items()})
    if args.extract:
        extract_talking_clips(args.extract, args.tracks)
    if args.encode:
        encode_talking_clips(args.encode, args.tracks)
    tracks = [load_talking_track(p) for p in sorted(args.tracks.glob("*.npz"))]
    if not tracks:
        parser.error(f"no tracks in {args.tracks}; extract them with --extract CLIPS_DIR")
    k = min(args.folds, len({t.speaker for t in tracks}))
    if args.model == "phonetic":
        if any(t.enc.shape[1] != ENC_DIM for t in tracks):
            parser.error(f"the tracks in {args.tracks} lack encoder inputs; add them with --encode CLIPS_DIR")
        out = args.out or CHECKPOINTS / PHONETIC_FILE
        if out.suffix != ".npz":
            parser.error(f"the phonetic model is saved as .npz, not {out.name}")
        report: dict = {"model": "phonetic"}
        if args.folds:
            report |= report_of(cross_validate_phonetic(tracks, k))
        model = train_phonetic(phonetic_items(tracks), tracks)
        model.save(out)
        report["setting"] = {"context": model.context, "delay": model.delay, "floor": round(model.floor, 3),
                             "silence_db": model.silence_db}  # fmt: skip
    else:
        import torch

        torch.set_num_threads(1)  # small convolutions: a second thread mostly waits
        out = args.out or CHECKPOINTS / "lipsync.pt"
        if args.pretrain_steps:
            init = synthetic_init(args.pretrain_steps)
        else:
            init = init_from(args.init) if str(args.init) and args.init.is_file() else None
        report = {
            "model": "mel",
            "init": "synthetic pre-training" if args.pretrain_steps else str(init and args.init.name),
        }
        if args.folds:
            report |= report_of(cross_validate(tracks, args.steps, k, init))
        model = train(real_items(tracks), args.steps, init=init)
        torch.save({k: v.half() for k, v in model.state_dict().items()}, out)
    report["checkpoint"] = f"{out.name} ({out.stat().st_size / 1e3:.0f} kB)"
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
