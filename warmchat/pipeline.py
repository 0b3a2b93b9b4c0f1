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
from warmchat.emotions import normalize_emotion
from warmchat.errors import InputError
from warmchat.render import make_renderer
from warmchat.schema import GenerateResult, Timeline, Turn

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


def check_inputs(
    emotion_a: str, emotion_b: str, topic: str, turns: int, script: str | None, config: WarmChatConfig
) -> tuple[str, str, str]:
    """Validate the user's choices; returns the normalised (emotion_a, emotion_b, topic)."""
    emotions = []
    for name, value in (("emotion_a", emotion_a), ("emotion_b", emotion_b)):
        try:
            emotions.append(normalize_emotion(value))
        except ValueError as exc:
            raise InputError(f"{name}: {exc}", name) from exc
    if script is None and config.dialogue.backend == "script":
        raise InputError("the script dialogue backend needs a script: write one line per turn, 'A: text'", "script")
    if script is None:
        dialogue.check_turns(turns)
    topic = dialogue.check_topic(topic) if (script is None or topic) else "(a conversation)"
    speech.check_voices(config.speech)
    return emotions[0], emotions[1], topic


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


def generate(portrait_a, portrait_b, **kwargs) -> GenerateResult:
    """Render a two-person conversation video from two portraits.

    Args:
        portrait_a, portrait_b: image paths (or RGB arrays) of the two people; A speaks first.
        emotion_a, emotion_b: each person's starting emotion (one of the 8 MEAD emotions).
        topic: what they talk about (may be empty when a script is given).
        turns: lines to generate when there is no script.
        script: a user-written dialogue (text, or a path to a .txt file): ``A: text`` / ``B [sad]: text`` lines.
        out: the .mp4 to write; the plot, tree JSON and SRT are written beside it.
        names: display names for A and B.
        config: a `WarmChatConfig` (seed, sizes, voices, ...).
        progress: called with (fraction 0..1, message) as work advances.
        on_turn: called with each Turn as soon as it is written.
    Returns:
        GenerateResult with the four output paths and per-stage timings.
    """
    on_turn = kwargs.pop("on_turn", None)
    for event in iter_generate(portrait_a, portrait_b, **kwargs):
        if isinstance(event, TurnWritten) and on_turn:
            on_turn(event.turn)
        elif isinstance(event, Finished):
            return event.result
    raise RuntimeError("the conversation ended without a result")  # unreachable: iter_generate always finishes


def iter_generate(
    portrait_a,
    portrait_b,
    *,
    emotion_a: str = "neutral",
    emotion_b: str = "neutral",
    topic: str = "",
    turns: int = 4,
    script: str | Path | None = None,
    out: str | Path = "out/chat.mp4",
    names: dict[str, str] | None = None,
    config: WarmChatConfig | None = None,
    progress: Progress | None = None,
) -> Iterator[Event]:
    """Like `generate`, but turn by turn: yields each turn as it is written and each turn's video as it is rendered.

    A failure or cancellation part-way keeps what was done: the finished turns are joined into the output video
    and the SRT and tree cover them. Arguments as for `generate`.
    """
    cfg = config or WarmChatConfig()
    progress = progress or _no_progress
    names = {"A": "Alex", "B": "Sam", **(names or {})}
    if script is not None and Path(str(script)).suffix == ".txt" and Path(str(script)).is_file():
        script = Path(script).read_text(encoding="utf-8")
    emotion_a, emotion_b, topic = check_inputs(emotion_a, emotion_b, topic, turns, script, cfg)
    paths = output_paths(Path(out))
    paths["video"].parent.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    fps, size = cfg.compose.fps, cfg.face.size

    with _stage(times, "face"):
        progress(0.0, "reading portraits")
        rigs = {"A": face.build_rig(portrait_a, "A", cfg.face), "B": face.build_rig(portrait_b, "B", cfg.face)}
        renderers = {p: make_renderer(rigs[p], cfg.render.renderer, cfg.render, cfg.seed) for p in ("A", "B")}
    for person, rig in rigs.items():
        for note in rig.notes:
            yield Notice(f"portrait_{person.lower()}", note)

    itt = tree.InteractiveTalkingTree(topic, emotion_a, emotion_b, cfg.tree)
    # A given script always wins over generating; otherwise the configured backend writes the lines.
    dcfg = replace(cfg.dialogue, turns=turns, backend="script" if script is not None else cfg.dialogue.backend)
    backend = dialogue.make_backend(dcfg, None if script is None else str(script))
    n_turns = backend.length or turns
    source = dialogue.iter_dialogue(
        topic,
        emotion_a,
        emotion_b,
        dcfg,
        seed=cfg.seed,
        names=names,
        tree=itt,
        progress=lambda f, m: progress(f * 0.999, m),
        backend=backend,
    )
    voices = speech.voices_for(cfg.speech)
    builder = timeline.TimelineBuilder(cfg.speech.sample_rate, fps)
    rngs = np.random.default_rng(cfg.seed).spawn(2)
    params = {p: motion.draw_person_motion(rngs[i], cfg.motion) for i, p in enumerate("AB")}
    lines: list[Turn] = []  # grows as turns arrive; the captioner reads the same list
    captioner = compose.Captioner(2 * size, lines, names) if cfg.compose.subtitles else None
    writer = _SegmentWriter(renderers, captioner, size, cfg.compose.crf, cfg.render.batch_frames)
    parts = paths["video"].with_suffix(".parts")
    parts.mkdir(exist_ok=True)
    utterances = []
    segments: list[Path] = []
    clock = builder.timeline()
    done = 0  # frames rendered so far
    complete = False
    try:
        for i in range(n_turns):
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
                end = clock.n_frames if last else min(int(np.ceil(seg.end * fps)), clock.n_frames)

            with _stage(times, "tree+plot"):
                itt.set_times(clock)
                itt.save(paths["tree_json"])
                compose.write_srt(paths["srt"], clock, lines, names)
                curves = itt.emotion_curves(clock)

            with _stage(times, "motion"):
                tracks = {
                    p: motion.build_motion(p, clock, utterances, curves[p], cfg.motion, params[p], done, end)
                    for p in ("A", "B")
                }

            with _stage(times, "render"):
                path = parts / f"turn_{i + 1:03d}.ts"
                writer.write(
                    path,
                    tracks,
                    clock,
                    done,
                    end,
                    lambda f, i=i: progress(
                        (i + 0.2 + 0.8 * f) / n_turns, f"rendering turn {i + 1}/{n_turns} — {f:.0%}"
                    ),
                )
                segments.append(path)
            yield SegmentRendered(i, path, done / fps, end / fps)
            done = end
        complete = True
    finally:
        # Runs on success, failure and cancellation alike: whatever turns were rendered become the video.
        if segments:
            final = clock if complete else _truncate(clock, done)
            with _stage(times, "compose"), tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "audio.wav"
                compose.write_wav(wav, final.audio, final.sample_rate)
                compose.join_segments(segments, wav, paths["video"], fps)
                plots.plot_timeline(paths["timeline_png"], itt.emotion_curves(final), final, lines, names)
            if complete:
                shutil.rmtree(parts, ignore_errors=True)
        elif parts.is_dir() and not any(parts.iterdir()):
            parts.rmdir()

    progress(1.0, "done")
    log.info("stage seconds: %s", {k: round(v, 2) for k, v in times.items()})
    yield Finished(GenerateResult(
        video=paths["video"], timeline_png=paths["timeline_png"], tree_json=paths["tree_json"], srt=paths["srt"],
        turns=lines, duration_s=clock.duration, n_frames=clock.n_frames, fps=fps,
        renderer=renderers["A"].name, stage_seconds=times,
    ))  # fmt: skip


def _truncate(clock: Timeline, frames: int) -> Timeline:
    """The conversation clock cut after `frames` video frames (for a partial result)."""
    samples = round(frames * clock.sample_rate / clock.fps)
    kept = [s for s in clock.segments if s.end <= frames / clock.fps + 1e-6]
    return Timeline(audio=clock.audio[:samples], sample_rate=clock.sample_rate, fps=clock.fps, segments=kept)


@dataclass
class _SegmentWriter:
    """Renders frame ranges of both faces, side by side with captions, into playable MPEG-TS segments."""

    renderers: dict
    captioner: compose.Captioner | None
    size: int
    crf: int
    batch_frames: int = 48  # frames per render call: the diffusion renderer makes one GPU call per batch

    def write(
        self,
        path: Path,
        tracks: dict,
        clock: Timeline,
        start: int,
        end: int,
        progress: Callable[[float], None],
    ) -> None:
        """Frames [start, end) with the matching slice of the conversation audio."""
        height = self.size + (compose.CAPTION_H if self.captioner else 0)
        samples_per_frame = clock.sample_rate / clock.fps
        audio = clock.audio[round(start * samples_per_frame) : round(end * samples_per_frame)]
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "segment.wav"
            compose.write_wav(wav, audio, clock.sample_rate)
            with compose.VideoWriter(path, 2 * self.size, height, clock.fps, wav, self.crf) as writer:
                step = max(1, self.batch_frames)
                for k0 in range(0, end - start, step):
                    rows = slice(k0, min(k0 + step, end - start))
                    faces = {
                        p: self.renderers[p].render_batch(tracks[p].expression[rows], tracks[p].pose[rows])
                        for p in "AB"
                    }
                    for i, k in enumerate(range(rows.start, rows.stop)):
                        seg = clock.segment_at((start + k) / clock.fps)
                        caption = self.captioner.strip(seg.turn_index if seg else None) if self.captioner else None
                        writer.write(compose.compose_frame(faces["A"][i], faces["B"][i], caption))
                    progress(rows.stop / max(end - start, 1))
