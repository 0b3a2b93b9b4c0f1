"""Regenerate a turn: a new take of one line becomes active, the lines after it are written again from there, and the
tree keeps the discarded take as a sibling (an alternative take, still counted at its sibling weight).

`regenerate` re-renders the whole conversation from the new tree with the pipeline (`iter_generate(from_tree=...)`):
every frame depends only on the seed and the conversation up to it, so the turns before the branch point come out
exactly as before. The timeline plot draws each discarded take's emotions as faint dashed curves from its branch
point (`plot_timeline_with_takes`), and `take_rows` adds them to the app's interactive plot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from warmchat import dialogue
from warmchat.config import WarmChatConfig
from warmchat.dialogue.hygiene import fit_line, too_similar
from warmchat.emotions import EMOTION_COLORS, EMOTIONS, valence_arousal
from warmchat.errors import InputError
from warmchat.schema import GenerateResult, Timeline, Turn, other
from warmchat.timeline import TAIL_S
from warmchat.tree import InteractiveTalkingTree, Node

TAKE_SEED = 7919  # seed step between alternative takes of a line, so a regenerated line is sampled afresh


def load_tree(source: str | Path | dict | InteractiveTalkingTree | GenerateResult) -> InteractiveTalkingTree:
    """A private copy of a conversation's tree: from its JSON file or dict, a tree, or a `GenerateResult`.

    Raises:
        InputError: the file is missing or is not a WarmChat tree.
    """
    if isinstance(source, GenerateResult):
        source = source.tree_json
    if isinstance(source, InteractiveTalkingTree):
        source = source.to_dict()
    if not isinstance(source, dict):
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"the tree JSON could not be read ({type(exc).__name__})", "tree") from None
    try:
        return InteractiveTalkingTree.from_dict(source)
    except (KeyError, TypeError) as exc:
        raise InputError(f"not a WarmChat tree JSON (missing {exc})", "tree") from None


def rewrite_from(
    tree: InteractiveTalkingTree,
    turn: int,
    names: dict[str, str],
    config: WarmChatConfig,
    on_turn: Callable[[int, Turn], None] | None = None,
) -> list[Turn]:
    """Write a new take of line `turn` (1-based) and new lines after it into `tree`; returns the new active turns.

    The new take is a sibling of the old one and becomes active; the old take and the lines that followed it stay
    in the tree. Lines are written by the configured dialogue backend ("local" when the config says "script": a
    script has no other take to offer), each seeing the conversation so far and both people's feelings.

    Raises:
        InputError: `turn` is not a line of the conversation.
    """
    path = tree.active_path()
    if not 1 <= turn <= len(path):
        raise InputError(f"turn must be a line of the conversation, 1 to {len(path)}, got {turn}", "turn")
    dcfg = config.dialogue if config.dialogue.backend != "script" else replace(config.dialogue, backend="local")
    backend = dialogue.make_backend(dcfg, limits=config.limits)
    limits = config.limits
    n_turns = len(path)
    old = path[turn - 1]
    takes = 1 + len(tree.siblings(old.id))  # this is take number takes + 1 of the line
    turns = tree.active_turns()[: turn - 1]
    speaker = old.speaker
    try:
        for i in range(turn - 1, n_turns):
            last = tree.active_path()[i - 1].id if i else None
            request = dialogue.TurnRequest(
                topic=tree.topic, names=names, speaker=speaker, history=list(turns),
                feelings={c: tree.cumulative_emotion(c, last) for c in ("A", "B")}, index=i, total=n_turns,
                seed=config.seed + takes * TAKE_SEED,
            )  # fmt: skip
            discarded = [old.text, *(n.text for n in tree.siblings(old.id))] if i == turn - 1 else []
            for attempt in range(2):  # a new take should say something new
                new = backend.next_turn(replace(request, seed=request.seed + attempt * 101))
                new.text = fit_line(new.text, limits.line_words, limits.line_chars)
                if not any(too_similar(new.text, d) for d in discarded):
                    break
            new = Turn(speaker, new.text, new.emotion, new.intensity, new.emotion_given)
            if i == turn - 1:
                tree.regenerate(old.id, new)
            else:
                tree.add_turn(new)
            turns.append(new)
            if on_turn:
                on_turn(i, new)
            speaker = other(speaker)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    return turns


def iter_regenerate(
    portrait_a: str | Path | np.ndarray,
    portrait_b: str | Path | np.ndarray,
    tree: str | Path | dict | InteractiveTalkingTree | GenerateResult,
    *,
    turn: int,
    out: str | Path = "out/chat.mp4",
    names: dict[str, str] | None = None,
    config: WarmChatConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    audio_dir: str | Path | None = None,
):
    """Like `regenerate`, as the pipeline's events (`TurnWritten`, `SegmentRendered`, `Notice`, `Finished`)."""
    from warmchat.pipeline import iter_generate

    cfg = config or WarmChatConfig()
    names = {"A": "Alex", "B": "Sam", **(names or {})}
    itt = load_tree(tree)
    if progress:
        progress(0.0, f"writing a new take of turn {turn}")
    rewrite_from(itt, turn, names, cfg)
    priors = {c: _emotion_of(itt.priors[c]) for c in ("A", "B")}
    yield from iter_generate(
        portrait_a, portrait_b, emotion_a=priors["A"], emotion_b=priors["B"], topic=itt.topic, out=out, names=names,
        config=cfg, progress=progress, should_stop=should_stop, from_tree=itt, audio_dir=audio_dir,
    )  # fmt: skip


def regenerate(
    portrait_a: str | Path | np.ndarray,
    portrait_b: str | Path | np.ndarray,
    tree: str | Path | dict | InteractiveTalkingTree | GenerateResult,
    *,
    turn: int,
    out: str | Path = "out/chat.mp4",
    names: dict[str, str] | None = None,
    config: WarmChatConfig | None = None,
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    audio_dir: str | Path | None = None,
) -> GenerateResult:
    """Regenerate line `turn` (1-based) of a rendered conversation and render the new conversation.

    Args:
        portrait_a, portrait_b, names, config: as given to `generate` for the original (the seed, size and voices
            decide the frames; the same ones reproduce the turns before `turn` exactly).
        tree: the original's tree (its `.tree.json`, a dict, a tree, or its `GenerateResult`); not modified.
        turn: the line to write again; the lines after it are written again from the new take.
        out: the .mp4 to write; the tree JSON beside it keeps the discarded take as a sibling of the new one.
        audio_dir: the folder the original's recorded lines were read from (as given to `generate`); None refuses
            a tree with recorded lines.
    Returns:
        GenerateResult of the new conversation; its timeline PNG shows the discarded take's emotions dashed.
    Raises:
        InputError: a bad input, or `turn` outside the conversation.
    """
    from warmchat.pipeline import Finished

    for event in iter_regenerate(
        portrait_a, portrait_b, tree, turn=turn, out=out, names=names, config=config, progress=progress,
        should_stop=should_stop, audio_dir=audio_dir,
    ):  # fmt: skip
        if isinstance(event, Finished):
            redraw_with_takes(event.result, names or {})
            return event.result
    raise RuntimeError("the regenerated conversation ended without a result")  # unreachable


def redraw_with_takes(result: GenerateResult, names: dict[str, str]) -> None:
    """Redraw a result's timeline PNG with its tree's discarded takes (no-op when there are none)."""
    itt = InteractiveTalkingTree.load(result.tree_json)
    if not discarded_takes(itt):
        return
    names = {"A": "Alex", "B": "Sam", **names}
    spans = [(n.start, n.end) for n in itt.active_path()]
    clock = _clock_of(itt, result.fps, spans, result.n_frames)
    plot_timeline_with_takes(result.timeline_png, itt, clock, result.turns, names)


def _emotion_of(p: list[float]) -> str:
    p = np.asarray(p)
    return EMOTIONS[1 + int(np.argmax(p[1:]))] if p[1:].max() > 1e-9 else "neutral"


# ----- discarded takes on the timeline ---------------------------------------------------------------------------
def discarded_takes(tree: InteractiveTalkingTree) -> list[tuple[int, Node, InteractiveTalkingTree]]:
    """(turn number, discarded take, the tree as it was while that take was active) for each voiced discarded take.

    A take made later always has a higher node id, so the tree "as it was" is the nodes made before the next take
    of the same line, with the discarded take active again.
    """
    out = []
    for number, node in enumerate(tree.active_path(), start=1):
        takes = sorted([node, *tree.siblings(node.id)], key=lambda n: n.id)
        for k, take in enumerate(takes[:-1]):
            if take.id == node.id or take.start is None:
                continue
            before = takes[k + 1].id
            data = tree.to_dict()
            data["nodes"] = [n for n in data["nodes"] if n["id"] < before]
            for n in data["nodes"]:
                n["children"] = [c for c in n["children"] if c < before]
                if n["active_child"] is not None and n["active_child"] >= before:
                    n["active_child"] = None
            data["nodes"][take.parent]["active_child"] = take.id
            out.append((number, take, InteractiveTalkingTree.from_dict(data)))
    return out


def take_curves(tree: InteractiveTalkingTree, fps: int) -> list[tuple[int, float, np.ndarray, dict[str, np.ndarray]]]:
    """(turn number, branch time s, times (T,), person -> (T, 8) emotion) of each discarded take, from its branch."""
    out = []
    for number, take, then in discarded_takes(tree):
        path = [n for n in then.active_path() if n.start is not None]
        spans = [(n.start, n.end) for n in path]
        n_frames = int(np.ceil((spans[-1][1] + TAIL_S) * fps))
        curves = then.frame_curves(n_frames, fps, spans)
        t = np.arange(n_frames) / fps
        keep = t >= take.start
        out.append((number, float(take.start), t[keep], {c: v[keep] for c, v in curves.items()}))
    return out


def plot_timeline_with_takes(
    path: Path, tree: InteractiveTalkingTree, clock: Timeline, turns: list[Turn], names: dict[str, str]
) -> Path:
    """The emotion-timeline PNG (`plots.plot_timeline`), with each discarded take's emotions as faint dashed curves
    from its branch point: the stacked bands' edges as they were in the discarded take."""
    from warmchat import plots

    curves = tree.emotion_curves(clock)
    takes = take_curves(tree, clock.fps)
    if not takes:
        return plots.plot_timeline(path, curves, clock, turns, names)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(clock.n_frames) / clock.fps
    end = max([t[-1] if len(t) else 1.0] + [float(tt[-1]) for _, _, tt, _ in takes if len(tt)])
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.2), sharex=True, constrained_layout=True)
    for ax, person in zip(axes, ("A", "B"), strict=True):
        ax.stackplot(t, curves[person].T, colors=[EMOTION_COLORS[e] for e in EMOTIONS], labels=EMOTIONS, alpha=0.9)
        for seg in clock.segments:
            turn = turns[seg.turn_index]
            ax.axvline(seg.start, color="black", lw=0.8, alpha=0.6)
            if turn.speaker == person:
                box = {"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8}
                label = f"{seg.turn_index + 1}: {turn.emotion}"
                ax.text((seg.start + seg.end) / 2, 0.96, label, ha="center", va="top", fontsize=8, bbox=box)
        for number, start, tt, take in takes:
            edges = np.cumsum(take[person], axis=1)  # (T, 8) top edge of each stacked band
            for j, emotion in enumerate(EMOTIONS[:-1]):
                ax.plot(tt, edges[:, j], ls="--", lw=1.4, color=EMOTION_COLORS[emotion], alpha=0.9, zorder=5)
            ax.axvline(start, color="black", lw=1.2, ls=":")
            ax.text(start, 0.04, f" discarded take of turn {number} (dashed)", fontsize=7, va="bottom")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, end)
        ax.set_ylabel(f"{names[person]}\nemotion", fontsize=10)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[0].set_title("How each person's feelings evolved; dashed: a discarded take from where it branched",
                      fontsize=11)  # fmt: skip
    axes[1].set_xlabel("time (s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def take_rows(tree: InteractiveTalkingTree, fps: int, names: dict[str, str], step_s: float = 0.2) -> list[dict]:
    """Rows for the app's interactive plot (as `plots.timeline_rows`): each discarded take's valence and arousal
    from its branch point, as its own series ("Lisa · discarded take of turn 2")."""
    rows = []
    stride = max(1, round(step_s * fps))
    for number, _start, tt, take in take_curves(tree, fps):
        for person in ("A", "B"):
            va = valence_arousal(take[person])
            for f in range(0, len(tt), stride):
                top = int(np.argmax(take[person][f]))
                rows.append({
                    "time (s)": round(float(tt[f]), 2), "person": f"{names[person]} · discarded take of turn {number}",
                    "valence": round(float(va[f, 0]), 3), "arousal": round(float(va[f, 1]), 3),
                    "feeling": f"{EMOTIONS[top]} {take[person][f, top]:.0%}", "turn": number, "line": "",
                })  # fmt: skip
    return rows


def _clock_of(tree: InteractiveTalkingTree, fps: int, spans, n_frames: int) -> Timeline:
    """A silent clock with the tree's active spans (what the plot needs: frames and where each turn is)."""
    from warmchat.schema import Segment

    segments = [
        Segment(i, n.speaker, s, e) for i, (n, (s, e)) in enumerate(zip(tree.active_path(), spans, strict=True))
    ]
    rate = 100 * fps  # any rate whose samples per frame are whole
    return Timeline(np.zeros(n_frames * 100, np.float32), rate, fps, segments)
