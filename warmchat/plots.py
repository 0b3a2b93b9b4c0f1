"""The emotion-timeline plot: each person's cumulative emotion over the conversation, turn boundaries marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warmchat.emotions import EMOTION_COLORS, EMOTIONS
from warmchat.schema import Timeline, Turn
from warmchat.tree import InteractiveTalkingTree


def plot_timeline(
    path: Path, curves: dict[str, np.ndarray], timeline: Timeline, turns: list[Turn], names: dict[str, str]
) -> Path:
    """Write a PNG: one stacked-area panel per person (emotion probabilities over time) with turn boundaries.

    Args:
        curves: person -> (T, 8) per-frame emotion distribution from the tree.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(timeline.n_frames) / timeline.fps
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.2), sharex=True, constrained_layout=True)
    for ax, person in zip(axes, ("A", "B"), strict=True):
        curve = curves[person]
        ax.stackplot(t, curve.T, colors=[EMOTION_COLORS[e] for e in EMOTIONS], labels=EMOTIONS, alpha=0.9)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, t[-1] if len(t) else 1)
        ax.set_ylabel(f"{names[person]}\nemotion", fontsize=10)
        for seg in timeline.segments:
            turn = turns[seg.turn_index]
            ax.axvline(seg.start, color="black", lw=0.8, alpha=0.6)
            if turn.speaker == person:
                ax.axvspan(seg.start, seg.end, color="white", alpha=0.12)
                ax.text(
                    (seg.start + seg.end) / 2,
                    0.96,
                    f"{seg.turn_index + 1}: {turn.emotion}",
                    ha="center",
                    va="top",
                    fontsize=8,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8},
                )
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[0].set_title("How each person's feelings evolved (Interactive Talking Tree; lines mark turns)", fontsize=11)
    axes[1].set_xlabel("time (s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def timeline_rows(
    tree: InteractiveTalkingTree, n_frames: int, fps: int, names: dict[str, str], step_s: float = 0.2
) -> list[dict]:
    """The emotion timeline of a voiced tree as rows for an interactive plot: each person's valence and arousal
    every `step_s`, with the feeling and the line being said at that moment (for hover text)."""
    from warmchat.emotions import valence_arousal

    path = tree.active_path()
    spans = [(n.start, n.end) for n in path]
    curves = tree.frame_curves(n_frames, fps, spans)
    rows = []
    stride = max(1, round(step_s * fps))
    for person in ("A", "B"):
        curve = curves[person]
        va = valence_arousal(curve)
        for f in range(0, len(curve), stride):
            t = f / fps
            said = [i for i, (start, _) in enumerate(spans) if start <= t]
            node = path[said[-1]] if said else None
            top = int(np.argmax(curve[f]))
            rows.append({
                "time (s)": round(t, 2),
                "person": names[person],
                "valence": round(float(va[f, 0]), 3),
                "arousal": round(float(va[f, 1]), 3),
                "feeling": f"{EMOTIONS[top]} {curve[f, top]:.0%}",
                "turn": said[-1] + 1 if said else 0,
                "line": f"{names[node.speaker]}: {node.text}" if node else "",
            })  # fmt: skip
    return rows
