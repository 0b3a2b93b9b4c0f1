"""The emotion-timeline plot: each person's cumulative emotion over the conversation, turn boundaries marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from warmchat.emotions import EMOTION_COLORS, EMOTIONS
from warmchat.schema import Timeline, Turn


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
