"""Runs the stages in order for one conversation and reports progress; holds no stage logic."""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from warmchat import compose, dialogue, face, motion, plots, speech, timeline, tree
from warmchat.config import WarmChatConfig
from warmchat.errors import WarmChatError
from warmchat.inputs import check_inputs
from warmchat.render import make_renderer
from warmchat.schema import GenerateResult, MotionTrack, Timeline, Turn

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

# Frames per render call for the CPU warp: two batches of two faces in flight hold 25 MB at 512 px (48 frames: 150 MB),
# and fresh small batches reuse freed memory instead of faulting in new pages (8.5 vs 9.0 ms CPU per frame, measured).
CPU_BATCH_FRAMES = 8


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
def timed(times: dict[str, float], name: str):
    """Adds the seconds spent in the block to `times[name]`."""
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
    audio_dir: str | Path | None = None,
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
        audio_dir: the folder a script's recorded lines (``A <audio: take.wav>: text``) are read from, paths relative
            to it and never leaving it; None (the default, and the app's) refuses recorded lines.
    Returns:
        GenerateResult with the four output paths and per-stage timings.
    Raises:
        InputError: a bad input or setting, before any work. Other errors part-way carry the joined finished turns
            as `exc.partial_result` (a GenerateResult, or None when no turn was finished).
    """
    events = iter_generate(
        portrait_a, portrait_b, emotion_a=emotion_a, emotion_b=emotion_b, topic=topic, turns=turns, script=script,
        out=out, names=names, config=config, progress=progress, should_stop=should_stop, audio_dir=audio_dir,
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
    on_text: Callable[[str, str], None] | None = None,
    audio_dir: str | Path | None = None,
) -> Iterator[Event]:
    """Like `generate`, but turn by turn: yields each turn as it is written and each turn's video as it is rendered.

    A failure, a stop or a cancellation part-way keeps what was done: the finished turns are joined into the output
    video and the SRT, tree and plot cover exactly them. Arguments as for `generate`, and:

    from_tree: render this tree's active path as it is (a conversation with a regenerated turn,
        `warmchat.regenerate`): no line is written, and the tree, alternative takes included, drives the faces and
        is saved. Its lines are checked like a script's.
    on_text: called with (speaker, the line so far) while the dialogue model writes a line, where the backend
        streams, so a viewer can read it before it is voiced; called from the pipeline's turn thread.
    """
    cfg = config or WarmChatConfig()
    progress = progress or _no_progress
    should_stop = should_stop or (lambda: False)
    if from_tree is not None:
        script = "\n".join(
            f"{t.speaker} [{t.emotion} {t.intensity:.3f}]{f' <audio: {t.audio}>' if t.audio else ''}: {t.text}"
            for t in from_tree.active_turns()
        )
    req = check_inputs(
        portrait_a, portrait_b, emotion_a=emotion_a, emotion_b=emotion_b, topic=topic, turns=turns, script=script,
        out=out, names=names, config=cfg,
    )  # fmt: skip
    names = req.names
    paths = output_paths(req.out)
    times: dict[str, float] = {}
    fps, size = cfg.compose.fps, cfg.face.size

    progress(0.0, "reading portraits")
    # The portraits are read in a thread while this one starts the dialogue backend (loads its models, labels a
    # script's lines); the turn thread starts on the first turn as soon as the backend is ready. (Loading the voices
    # and head model ahead in a third thread measured worse on the busy 2-core machine: first turn 57 s vs 34 s.)
    producer = _TurnProducer(cfg, times, audio_dir)
    producer.start()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="warmchat-face") as pool:
            face_job = pool.submit(_read_portraits, req, cfg, times)
            # A given script always wins over generating; otherwise the configured backend writes the lines. A bad
            # script line is reported before any portrait error.
            dcfg = replace(
                cfg.dialogue, turns=req.turns, backend="script" if req.script is not None else cfg.dialogue.backend
            )
            backend = dialogue.make_backend(dcfg, req.script, limits=cfg.limits, audio_dir=audio_dir)
            n_turns = backend.length or req.turns
            if from_tree is None:
                itt = tree.InteractiveTalkingTree(req.topic, req.emotion_a, req.emotion_b, cfg.tree)
                source = dialogue.iter_dialogue(
                    req.topic, req.emotion_a, req.emotion_b, dcfg, seed=cfg.seed, names=names, tree=itt,
                    progress=lambda f, m: producer.send(f * 0.999, m), backend=backend, limits=cfg.limits,
                    on_text=on_text,
                )  # fmt: skip
            else:  # the lines are in the tree already
                itt, source = from_tree, (turn for turn in from_tree.active_turns())
            producer.begin(source, itt, n_turns)  # the first turn needs no portrait: it starts now
            rigs, renderers = face_job.result()
    except BaseException:
        producer.stop()
        raise
    lines: list[Turn] = []  # grows as turns arrive; the captioner reads the same list
    captioner = compose.Captioner(2 * size, lines, names) if cfg.compose.subtitles else None
    on_cpu = all(r.name == "cpu" for r in renderers.values())
    writer = compose.SegmentWriter(
        renderers, captioner, size, cfg.compose.crf,
        # CPU warp: small batches, and A and B render in two threads (its kernels release the GIL).
        batch_frames=CPU_BATCH_FRAMES if on_cpu else cfg.render.batch_frames, workers=2 if on_cpu else 0,
    )  # fmt: skip
    parts = paths["video"].with_suffix(".parts")
    parts.mkdir(exist_ok=True)
    segments: list[Path] = []
    clock = None  # the conversation clock as of the last turn taken
    done = 0  # frames rendered so far
    complete = False
    note = ""  # why the conversation stopped early
    failure: BaseException | None = None
    shown = 0.0  # progress shown so far: messages from the producer may arrive late and must not go backwards

    def report(fraction: float, message: str) -> None:
        nonlocal shown
        shown = max(shown, fraction)
        progress(shown, message)

    try:
        for person, rig in rigs.items():
            for notice in rig.notes:
                yield Notice(f"portrait_{person.lower()}", notice)
        for i in range(n_turns):
            if should_stop():
                note = f"stopped on request after {i} turns"
                break
            report(i / n_turns, f"writing turn {i + 1}/{n_turns}")
            plan = producer.next(report)
            if isinstance(plan, _Written):  # shown as soon as it exists, while it is voiced and moved
                lines.append(plan.turn)
                yield TurnWritten(i, plan.turn)
                plan = producer.next(report)
            if plan.note:  # the producer ran out of room (the speech limit) or the dialogue ended
                note = plan.note
                break
            clock = plan.clock

            with timed(times, "render"):
                path = parts / f"turn_{i + 1:03d}.ts"

                def turn_progress(f: float, i: int = i) -> None:
                    report((i + 0.2 + 0.8 * f) / n_turns, f"rendering turn {i + 1}/{n_turns} — {f:.0%}")

                written = writer.write(path, plan.tracks, plan.clock, done, plan.end, turn_progress, should_stop)
                producer.taken()  # room for the turn after next
                if not written:
                    note = f"stopped on request during turn {i + 1}; turns 1–{i} are kept"
                    break
                segments.append(path)
            yield SegmentRendered(i, path, done / fps, plan.end / fps)
            done = plan.end
        else:
            complete = True
    except BaseException as exc:
        failure = exc
        raise
    finally:
        # Runs on success, stop, failure and cancellation alike: whatever turns were rendered become the video.
        # The producer is stopped first (it finishes the turn in hand), so the tree no longer changes.
        producer.stop()
        writer.close()
        result = None
        if segments:
            final = clock if complete else timeline.truncate(clock, done)
            kept = lines[: len(segments)]
            final_tree = itt if complete else itt.cut(len(segments))
            with timed(times, "compose"), tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(1) as pool:
                wav = Path(tmp) / "audio.wav"
                compose.write_wav(wav, final.audio, final.sample_rate)
                joined = pool.submit(compose.join_segments, segments, wav, paths["video"], fps)  # ffmpeg, meanwhile:
                final_tree.save(paths["tree_json"])
                compose.write_srt(paths["srt"], final, kept, names)
                plots.plot_timeline(paths["timeline_png"], final_tree.emotion_curves(final), final, kept, names)
                joined.result()
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


def _read_portraits(req, cfg: WarmChatConfig, times: dict[str, float]) -> tuple[dict, dict]:
    """Both portraits' rigs and renderers."""
    with timed(times, "face"):
        rigs = {
            "A": face.build_rig(req.portrait_a, "A", cfg.face, limits=cfg.limits),
            "B": face.build_rig(req.portrait_b, "B", cfg.face, limits=cfg.limits),
        }
        renderers = {p: make_renderer(rigs[p], cfg.render.renderer, cfg.render, cfg.seed) for p in ("A", "B")}
    return rigs, renderers


@dataclass
class _Written:
    """A line the dialogue backend just wrote (its speech and motion follow)."""

    turn: Turn


@dataclass
class _TurnPlan:
    """The written turn ready to render: the clock so far and both people's motion up to its last frame."""

    clock: Timeline | None = None
    tracks: dict[str, MotionTrack] | None = None  # frames [start, end) of the turn
    end: int = 0  # the turn's video ends before this frame
    note: str = ""  # set when the conversation ends here instead


class _TurnProducer:
    """Writes, voices and moves the turns in a thread, at most `AHEAD` turns ahead of the renderer.

    While turn i renders and encodes, turn i+1's dialogue, speech and motion are made, so both cores stay busy.
    Each turn is made exactly as a sequential loop would make it (same order, same state), so the video is
    identical. The caller's callbacks are never called from this thread: progress messages travel with the
    turns and the caller relays them.
    """

    AHEAD = 2  # turns made but not yet rendered: the one rendering and the next (bounds memory)

    def __init__(self, cfg: WarmChatConfig, times: dict, audio_dir: str | Path | None = None):
        self._cfg, self._times, self._audio_dir = cfg, times, audio_dir
        self._source: Iterator[Turn] | None = None  # the dialogue, from `begin`
        self._itt: tree.InteractiveTalkingTree | None = None
        self._n = 0
        self._go = threading.Event()  # set by `begin` or `stop`
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # _Written, _TurnPlan, (fraction, message), exception
        self._room = threading.Semaphore(self.AHEAD)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="warmchat-turns", daemon=True)

    def start(self) -> None:
        """Start the thread; it waits for `begin`."""
        self._thread.start()

    def begin(self, source: Iterator[Turn], itt: tree.InteractiveTalkingTree, n_turns: int) -> None:
        """Make `n_turns` turns from `source`, whose turns join `itt`."""
        self._source, self._itt, self._n = source, itt, n_turns
        self._go.set()

    def next(self, progress: Progress) -> _Written | _TurnPlan:
        """The next line or plan (waits for it), relaying progress messages meanwhile; re-raises the thread's error."""
        while True:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, _Written | _TurnPlan):
                return item
            progress(*item)

    def send(self, fraction: float, message: str) -> None:
        """A progress message for the caller, from this thread."""
        self._queue.put((fraction, message))

    def taken(self) -> None:
        """The caller is done with a turn: the thread may make another."""
        self._room.release()

    def stop(self) -> None:
        """Make no more turns; waits for the turn in hand, if any (the tree is read once this returns)."""
        self._stopping.set()
        for _ in range(self.AHEAD):
            self._room.release()
        if not self._go.is_set():  # never began: nothing in hand
            self._go.set()
            return
        self._thread.join()
        self._source.close()

    def _run(self) -> None:
        try:
            self._make_turns()
        except BaseException as exc:  # handed to the caller's thread, which raises it with the finished turns kept
            self._queue.put(exc)

    def _make_turns(self) -> None:
        import torch

        # One thread for torch here: the head model's tiny matrices gain nothing from two, and its OpenMP
        # threads would otherwise spin against the render threads on a busy machine (40x slower, measured).
        torch.set_num_threads(1)
        self._go.wait()
        if self._stopping.is_set():
            return
        cfg, times = self._cfg, self._times
        rngs = np.random.default_rng(cfg.seed).spawn(2)
        params = {p: motion.draw_person_motion(rngs[i], cfg.motion) for i, p in enumerate("AB")}
        n_turns, itt = self._n, self._itt
        voices = speech.voices_for(cfg.speech)
        builder = timeline.TimelineBuilder(cfg.speech.sample_rate, cfg.compose.fps)
        curves = tree.EmotionCurves(itt)
        utterances = []
        done = 0
        for i in range(n_turns):
            self._room.acquire()
            if self._stopping.is_set():
                return
            with timed(times, "dialogue"):
                try:
                    turn = next(self._source)
                except StopIteration:  # a backend that wrote fewer lines than it announced
                    self._queue.put(_TurnPlan(note=f"the dialogue ended after {i} turns"))
                    return
            self._queue.put(_Written(turn))
            self.send((i + 0.1) / n_turns, f"voicing turn {i + 1}/{n_turns}")
            with timed(times, "speech"):
                utterances.append(
                    speech.voice_turn(
                        turn, i, voices[turn.speaker], cfg.seed, cfg.speech, self._audio_dir, cfg.limits.speech_s
                    )
                )
                seg = builder.add(turn, utterances[-1])
                last = i == n_turns - 1
                clock = builder.finish() if last else builder.timeline()
                end = timeline.segment_end_frame(clock, seg, last)
            if seg.end > cfg.limits.speech_s:
                note = (
                    f"stopped after {i} turns: turn {i + 1} would pass the limit of {cfg.limits.speech_s:g} s per "
                    "conversation"
                )
                self._queue.put(_TurnPlan(note=note))
                return
            with timed(times, "tree+plot"):
                itt.set_times(clock)
                emotion = curves.update(clock)
            with timed(times, "motion"):
                tracks = {
                    p: motion.build_motion(p, clock, utterances, emotion[p], cfg.motion, params[p], done, end)
                    for p in ("A", "B")
                }
            self._queue.put(_TurnPlan(clock, tracks, end))
            done = end
