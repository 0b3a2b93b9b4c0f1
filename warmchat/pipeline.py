"""Runs the stages in order for one conversation and reports progress; holds no stage logic."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from warmchat import compose, dialogue, face, motion, plots, speech, timeline, tree
from warmchat.config import WarmChatConfig
from warmchat.errors import WarmChatError
from warmchat.inputs import check_inputs
from warmchat.render import make_renderer
from warmchat.schema import GenerateResult, Turn

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    log.info("%3.0f%% %s", fraction * 100, message)


def output_paths(out: Path) -> dict[str, Path]:
    """The four files written for `out` (an .mp4 path): video, plot, tree and subtitles side by side."""
    out = Path(out)
    stem = out.with_suffix("")
    return {
        "video": out,
        "timeline_png": Path(f"{stem}.timeline.png"),
        "tree_json": Path(f"{stem}.tree.json"),
        "srt": Path(f"{stem}.srt"),
    }


@dataclass
class TurnWritten:
    """A line of the conversation exists (written by the model or read from the script)."""

    index: int
    turn: Turn


@dataclass
class SegmentRendered:
    """A turn's video is ready: an MPEG-TS segment (with its audio) that plays on its own."""

    index: int
    path: Path
    start_s: float  # where the segment starts in the final video
    end_s: float


@dataclass
class Notice:
    """Something the user may want to know that is not an error (e.g. several faces in a portrait)."""

    field: str  # the input it concerns, e.g. "portrait_a"
    message: str


@dataclass
class Finished:
    result: GenerateResult


Event = TurnWritten | SegmentRendered | Notice | Finished


@contextmanager
def _stage(times: dict[str, float], name: str):
    t0 = time.perf_counter()
    yield
    times[name] = times.get(name, 0.0) + time.perf_counter() - t0


def generate(
    portrait_a: str | Path | np.ndarray,
    portrait_b: str | Path | np.ndarray,
    *,
    emotion_a: str = "neutral",
    emotion_b: str = "neutral",
    topic: str = "",
    turns: int | None = None,
    script: str | None = None,
    out: str | Path = "out/chat.mp4",
    names: dict[str, str] | None = None,
    config: WarmChatConfig | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_turn: Callable[[Turn], None] | None = None,
) -> GenerateResult:
    """Render a two-person conversation video from two portraits.

    Args:
        portrait_a, portrait_b: image paths (or RGB arrays) of the two people; A speaks first.
        emotion_a, emotion_b: each person's starting emotion (one of the 8 MEAD emotions).
        topic: what they talk about (may be empty when a script is given).
        turns: lines to generate when there is no script (default `config.dialogue.turns`).
        script: a user-written dialogue as text: ``A: text`` / ``B [sad]: text`` lines (never a file path).
        out: the .mp4 to write; the plot, tree JSON and SRT are written beside it.
        names: display names for A and B.
        config: a `WarmChatConfig` (seed, sizes, voices, limits, ...).
        progress: called with (fraction 0..1, message) as work advances.
        should_stop: polled between turns and render batches; when it returns True the finished turns are joined
            and returned as a partial result (`result.partial`).
        on_turn: called with each Turn as soon as it is written.
    Returns:
        GenerateResult with the four output paths and per-stage timings.
    Raises:
        InputError: a bad input or setting, before any work. Other errors part-way carry the joined finished turns
            as `exc.partial_result` (a GenerateResult, or None when no turn was finished).
    """
    events = iter_generate(
        portrait_a, portrait_b, emotion_a=emotion_a, emotion_b=emotion_b, topic=topic, turns=turns, script=script,
        out=out, names=names, config=config, progress=progress, should_stop=should_stop,
    )  # fmt: skip
    for event in events:
        if isinstance(event, TurnWritten) and on_turn:
            on_turn(event.turn)
        elif isinstance(event, Finished):
            return event.result
    raise RuntimeError("the conversation ended without a result")  # unreachable: iter_generate always finishes


def iter_generate(
    portrait_a: str | Path | np.ndarray,
    portrait_b: str | Path | np.ndarray,
    *,
    emotion_a: str = "neutral",
    emotion_b: str = "neutral",
    topic: str = "",
    turns: int | None = None,
    script: str | None = None,
    out: str | Path = "out/chat.mp4",
    names: dict[str, str] | None = None,
    config: WarmChatConfig | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    from_tree: tree.InteractiveTalkingTree | None = None,
) -> Iterator[Event]:
    """Like `generate`, but turn by turn: yields each turn as it is written and each turn's video as it is rendered.

    A failure, a stop or a cancellation part-way keeps what was done: the finished turns are joined into the output
    video and the SRT, tree and plot cover exactly them. Arguments as for `generate`, and:

    from_tree: render this tree's active path as it is (a conversation with a regenerated turn,
        `warmchat.regenerate`): no line is written, and the tree, alternative takes included, drives the faces and
        is saved. Its lines are checked like a script's.
    """
    cfg = config or WarmChatConfig()
    progress = progress or _no_progress
    should_stop = should_stop or (lambda: False)
    if from_tree is not None:
        script = "\n".join(f"{t.speaker} [{t.emotion} {t.intensity:.3f}]: {t.text}" for t in from_tree.active_turns())
    req = check_inputs(
        portrait_a, portrait_b, emotion_a=emotion_a, emotion_b=emotion_b, topic=topic, turns=turns, script=script,
        out=out, names=names, config=cfg,
    )  # fmt: skip
    names = req.names
    # A given script always wins over generating; otherwise the configured backend writes the lines. The backend
    # parses the script here, so a bad line is reported before any portrait is read.
    dcfg = replace(cfg.dialogue, turns=req.turns, backend="script" if req.script is not None else cfg.dialogue.backend)
    backend = dialogue.make_backend(dcfg, req.script, limits=cfg.limits)
    n_turns = backend.length or req.turns
    paths = output_paths(req.out)
    times: dict[str, float] = {}
    fps, size = cfg.compose.fps, cfg.face.size

    with _stage(times, "face"):
        progress(0.0, "reading portraits")
        rigs = {
            "A": face.build_rig(req.portrait_a, "A", cfg.face, limits=cfg.limits),
            "B": face.build_rig(req.portrait_b, "B", cfg.face, limits=cfg.limits),
        }
        renderers = {p: make_renderer(rigs[p], cfg.render.renderer, cfg.render, cfg.seed) for p in ("A", "B")}
    for person, rig in rigs.items():
        for note in rig.notes:
            yield Notice(f"portrait_{person.lower()}", note)

    if from_tree is None:
        itt = tree.InteractiveTalkingTree(req.topic, req.emotion_a, req.emotion_b, cfg.tree)
        source = dialogue.iter_dialogue(
            req.topic, req.emotion_a, req.emotion_b, dcfg, seed=cfg.seed, names=names, tree=itt,
            progress=lambda f, m: progress(f * 0.999, m), backend=backend, limits=cfg.limits,
        )  # fmt: skip
    else:  # the lines are in the tree already
        itt, source = from_tree, iter(from_tree.active_turns())
    voices = speech.voices_for(cfg.speech)
    builder = timeline.TimelineBuilder(cfg.speech.sample_rate, fps)
    rngs = np.random.default_rng(cfg.seed).spawn(2)
    params = {p: motion.draw_person_motion(rngs[i], cfg.motion) for i, p in enumerate("AB")}
    lines: list[Turn] = []  # grows as turns arrive; the captioner reads the same list
    captioner = compose.Captioner(2 * size, lines, names) if cfg.compose.subtitles else None
    writer = compose.SegmentWriter(renderers, captioner, size, cfg.compose.crf, cfg.render.batch_frames)
    parts = paths["video"].with_suffix(".parts")
    parts.mkdir(exist_ok=True)
    utterances = []
    segments: list[Path] = []
    clock = builder.timeline()
    done = 0  # frames rendered so far
    complete = False
    note = ""  # why the conversation stopped early
    failure: BaseException | None = None
    try:
        for i in range(n_turns):
            if should_stop():
                note = f"stopped on request after {i} turns"
                break
            with _stage(times, "dialogue"):
                turn = next(source)
            lines.append(turn)
            yield TurnWritten(i, turn)

            with _stage(times, "speech"):
                progress((i + 0.1) / n_turns, f"voicing turn {i + 1}/{n_turns}")
                utterances.append(speech.voice_turn(turn, i, voices[turn.speaker], seed=cfg.seed, config=cfg.speech))
                seg = builder.add(turn, utterances[-1])
                last = i == n_turns - 1
                clock = builder.finish() if last else builder.timeline()
                end = timeline.segment_end_frame(clock, seg, last)
            if seg.end > cfg.limits.speech_s:
                note = (
                    f"stopped after {i} turns: turn {i + 1} would pass the limit of {cfg.limits.speech_s:g} s per "
                    "conversation"
                )
                break

            with _stage(times, "tree+plot"):
                itt.set_times(clock)
                curves = itt.emotion_curves(clock)

            with _stage(times, "motion"):
                tracks = {
                    p: motion.build_motion(p, clock, utterances, curves[p], cfg.motion, params[p], done, end)
                    for p in ("A", "B")
                }

            with _stage(times, "render"):
                path = parts / f"turn_{i + 1:03d}.ts"

                def turn_progress(f: float, i: int = i) -> None:
                    progress((i + 0.2 + 0.8 * f) / n_turns, f"rendering turn {i + 1}/{n_turns} — {f:.0%}")

                if not writer.write(path, tracks, clock, done, end, turn_progress, should_stop):
                    note = f"stopped on request during turn {i + 1}; turns 1–{i} are kept"
                    break
                segments.append(path)
            yield SegmentRendered(i, path, done / fps, end / fps)
            done = end
        else:
            complete = True
    except BaseException as exc:
        failure = exc
        raise
    finally:
        # Runs on success, stop, failure and cancellation alike: whatever turns were rendered become the video.
        result = None
        if segments:
            final = clock if complete else timeline.truncate(clock, done)
            kept = lines[: len(segments)]
            final_tree = itt if complete else itt.cut(len(segments))
            with _stage(times, "compose"), tempfile.TemporaryDirectory() as tmp:
                final_tree.save(paths["tree_json"])
                compose.write_srt(paths["srt"], final, kept, names)
                wav = Path(tmp) / "audio.wav"
                compose.write_wav(wav, final.audio, final.sample_rate)
                compose.join_segments(segments, wav, paths["video"], fps)
                plots.plot_timeline(paths["timeline_png"], final_tree.emotion_curves(final), final, kept, names)
            shutil.rmtree(parts, ignore_errors=True)
            if failure is not None and not note:
                note = f"stopped by an error during turn {len(segments) + 1}; turns 1–{len(segments)} are kept"
            result = GenerateResult(
                video=paths["video"], timeline_png=paths["timeline_png"], tree_json=paths["tree_json"],
                srt=paths["srt"], turns=kept, duration_s=final.duration, n_frames=final.n_frames, fps=fps,
                renderer=renderers["A"].name, stage_seconds=times, partial=not complete, note=note,
            )  # fmt: skip
        else:
            shutil.rmtree(parts, ignore_errors=True)
        if isinstance(failure, Exception):
            failure.partial_result = result  # the caller can still hand over what was finished

    progress(1.0, "done" if complete else note)
    log.info("stage seconds: %s", {k: round(v, 2) for k, v in times.items()})
    if result is None:
        raise WarmChatError(f"{note}: no turn was finished, so there is no video")
    if note:
        yield Notice("", f"Partial result: {note}.")
    yield Finished(result)
