"""Runs the stages in order for one conversation and reports progress; holds no stage logic."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from warmchat import compose, dialogue, face, motion, plots, speech, timeline, tree
from warmchat.config import WarmChatConfig
from warmchat.emotions import normalize_emotion
from warmchat.errors import InputError
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
    for person in ("voice_a", "voice_b"):
        voice = getattr(config.speech, person)
        if voice not in speech.VOICES:
            raise InputError(f"{person}: unknown voice {voice!r}; choose one of: {', '.join(speech.VOICES)}", person)
    return emotions[0], emotions[1], topic


@contextmanager
def _stage(times: dict[str, float], name: str):
    t0 = time.perf_counter()
    yield
    times[name] = times.get(name, 0.0) + time.perf_counter() - t0


def generate(
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
    on_turn: Callable[[Turn], None] | None = None,
) -> GenerateResult:
    """Render a two-person conversation video from two portraits.

    Args:
        portrait_a, portrait_b: image paths (or RGB arrays) of the two people; A speaks first.
        emotion_a, emotion_b: each person's starting emotion (one of the 8 MEAD emotions).
        topic: what they talk about (ignored by the dialogue when a script is given).
        turns: lines to generate when there is no script.
        script: a user-written dialogue (text, or a path to a text file): ``A: text`` / ``B [sad]: text`` lines.
        out: the .mp4 to write; the plot, tree JSON and SRT are written beside it.
        names: display names for A and B.
        progress: called with (fraction 0..1, message) as work advances.
        on_turn: called with each Turn as soon as it is written.
    Returns:
        GenerateResult with the four output paths and per-stage timings.
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
    rng = np.random.default_rng(cfg.seed)

    with _stage(times, "face"):
        progress(0.0, "reading portraits")
        rigs = {"A": face.build_rig(portrait_a, "A", cfg.face), "B": face.build_rig(portrait_b, "B", cfg.face)}

    itt = tree.InteractiveTalkingTree(topic, emotion_a, emotion_b, cfg.tree)
    with _stage(times, "dialogue"):
        # A given script always wins over generating; otherwise the configured backend writes the lines.
        dcfg = replace(cfg.dialogue, turns=turns, backend="script" if script is not None else cfg.dialogue.backend)
        lines = dialogue.generate_dialogue(
            topic,
            emotion_a,
            emotion_b,
            dcfg,
            seed=cfg.seed,
            names=names,
            tree=itt,
            progress=lambda f, m: progress(0.05 + 0.2 * f, m),
            on_turn=on_turn,
            script=None if script is None else str(script),
        )

    with _stage(times, "speech"):
        voices = {"A": cfg.speech.voice_a, "B": cfg.speech.voice_b}
        utterances = speech.voice_turns(
            lines, voices, seed=cfg.seed, progress=lambda f, m: progress(0.25 + 0.1 * f, m)
        )
        clock = timeline.build_timeline(lines, utterances, cfg.speech.sample_rate, cfg.compose.fps)

    # Everything but the video is written before rendering, so a failed render never loses the conversation.
    with _stage(times, "tree+plot"):
        itt.set_times(clock)
        itt.save(paths["tree_json"])
        compose.write_srt(paths["srt"], clock, lines, names)
        curves = itt.emotion_curves(clock)
        plots.plot_timeline(paths["timeline_png"], curves, clock, lines, names)

    with _stage(times, "motion"):
        progress(0.38, "animating faces")
        seeds = rng.spawn(2)
        tracks = {
            p: motion.build_motion(p, clock, utterances, curves[p], cfg.motion, seeds[i])
            for i, p in enumerate(("A", "B"))
        }

    with _stage(times, "render"):
        renderers = {p: make_renderer(rigs[p], cfg.render.renderer) for p in ("A", "B")}
        size = cfg.face.size
        captioner = compose.Captioner(2 * size, lines, names) if cfg.compose.subtitles else None
        height = size + (compose.CAPTION_H if captioner else 0)
        n = clock.n_frames
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "audio.wav"
            compose.write_wav(wav, clock.audio, clock.sample_rate)
            with compose.VideoWriter(paths["video"], 2 * size, height, clock.fps, wav, cfg.compose.crf) as writer:
                for f in range(n):
                    frames = [renderers[p].render(tracks[p].expression[f], tracks[p].pose[f]) for p in ("A", "B")]
                    seg = clock.segment_at(f / clock.fps)
                    caption = captioner.strip(seg.turn_index if seg else None) if captioner else None
                    writer.write(compose.compose_frame(frames[0], frames[1], caption))
                    if f % 25 == 0:
                        progress(0.4 + 0.6 * f / n, f"rendering frame {f + 1}/{n}")
    progress(1.0, "done")
    log.info("stage seconds: %s", {k: round(v, 2) for k, v in times.items()})
    return GenerateResult(
        video=paths["video"],
        timeline_png=paths["timeline_png"],
        tree_json=paths["tree_json"],
        srt=paths["srt"],
        turns=lines,
        duration_s=clock.duration,
        n_frames=n,
        fps=clock.fps,
        renderer=renderers["A"].name,
        stage_seconds=times,
    )
