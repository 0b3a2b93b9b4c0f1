"""Train the audio-to-mouth model (warmchat/motion/lipsync.py) and report how well it follows mouths.

    python -m warmchat.tools.train_lipsync [--steps 1500] [--out checkpoints/lipsync.pt]

Training pairs come from the offline voices, whose phoneme timings are exact: each line's audio features against
the mouth the phoneme model (coarticulation + loudness, `motion.speaker`) gives for it. The real clips cannot be the
training target: their soundtracks are mostly music, not the speaker's voice (see docs/motion.md), so they are
used for the honest check only. Reported: correlation with the phoneme model on held-out lines, on a voice the
model never heard (leave-voice-out), and with the real lip gap on the real clips that have sound.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from warmchat.motion.lipsync import build_model, line_inputs, predict_mouth
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


def train(items: list[dict], steps: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    n = 64  # frames per training crop
    for step in range(steps):
        xs, ys = [], []
        for _ in range(16):
            item = items[rng.integers(len(items))]
            x, y = item["x"], item["y"]
            s = rng.integers(0, max(len(x) - n, 0) + 1)
            xc, yc = np.zeros((n, x.shape[1]), np.float32), np.zeros((n, 6), np.float32)
            xc[:] = x[-1]  # pad with the line's (silent) last frame
            m = min(n, len(x) - s)
            xc[:m], yc[:m] = x[s : s + m], y[s : s + m]
            xc[:, :-1] *= rng.uniform(0.8, 1.2)  # timbre / level robustness
            xc[:, :-1] += rng.normal(0, 0.05, xc[:, :-1].shape)
            xs.append(xc.T)
            ys.append(yc.T)
        x = torch.from_numpy(np.array(xs))
        y = torch.from_numpy(np.array(ys))
        pred = model(x)
        loss = ((pred - y) ** 2).mean() + ((pred.diff(dim=2) - y.diff(dim=2)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            log.info("step %d loss %.4f", step, loss.item())
    model.eval()
    return model


def jaw_correlation(model, items: list[dict]) -> float:
    """Correlation of predicted and target jaw over the items' frames (pooled)."""
    pred = np.concatenate([predict_mouth(model, it["feats"])[:, 0] for it in items])
    target = np.concatenate([it["y"][:, 0] for it in items])
    return float(np.corrcoef(pred, target)[0, 1])


def real_clip_correlation(model) -> dict[str, float]:
    """Correlation of predicted jaw with the real lip gap on each real clip that has sound (tracks at 25-30 fps)."""
    from warmchat.motion.tracks import TRACKS_DIR, load_tracks

    out = {}
    for path in sorted(TRACKS_DIR.glob("*.npz")):
        tr = load_tracks(path)
        if tr.has_audio:
            pred = predict_mouth(model, tr.features)[:, 0]
            out[path.stem] = round(float(np.corrcoef(pred, tr.mouth_open)[0, 1]), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m warmchat.tools.train_lipsync", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=CHECKPOINTS / "lipsync.pt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)  # small convolutions: a second thread mostly waits
    items = synthesize_lines(("hibari", "piper-joe"))
    train_items = [it for it in items if it["line"] < len(LINES) - HELD_OUT]
    test_items = [it for it in items if it["line"] >= len(LINES) - HELD_OUT]
    report = {}
    # Leave-voice-out: trained on one voice only, tested on the other's held-out lines.
    for heard, unheard in (("hibari", "piper-joe"), ("piper-joe", "hibari")):
        model = train([it for it in train_items if it["voice"] == heard], args.steps // 2)
        report[f"jaw_corr_unheard_voice_{unheard}"] = round(
            jaw_correlation(model, [it for it in test_items if it["voice"] == unheard]), 3
        )
    model = train(train_items, args.steps)
    report["jaw_corr_held_out_lines"] = round(jaw_correlation(model, test_items), 3)
    report["jaw_corr_real_clips_lip_gap"] = real_clip_correlation(model)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, args.out)
    report["checkpoint"] = f"{args.out.name} ({args.out.stat().st_size / 1e3:.0f} kB)"
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
