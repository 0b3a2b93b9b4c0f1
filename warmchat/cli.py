"""Command line: `python -m warmchat render ...` renders one conversation, `batch` many; `animate` one portrait
speaking a recording; `doctor` checks the machine."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from warmchat.config import SETTINGS, WarmChatConfig, apply_settings, setting_choices, setting_default
from warmchat.emotions import EMOTIONS
from warmchat.errors import InputError, WarmChatError
from warmchat.speech import VOICES

# Help for the options that are settings of WarmChatConfig; their defaults and choices come from the config.
SETTING_HELP = {
    "turns": "lines to generate (2-30)",
    "llm": "who writes the lines: the offline model, an OpenAI-compatible server (key from the OPENAI_API_KEY "
    "environment variable, never a flag), or the --script",
    "llm_model": "model name for --llm openai (WARMCHAT_LLM_MODEL)",
    "llm_base_url": "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (OPENAI_BASE_URL)",
    "tts": "speech backend",
    "voice_a": "A's offline voice",
    "voice_b": "B's offline voice",
    "openai_voice_a": "A's voice with --tts openai (e.g. coral, nova)",
    "openai_voice_b": "B's voice with --tts openai (e.g. onyx, ash)",
    "size": "pixels per face (a multiple of 8)",
    "fps": "frames per second",
    "seed": "same inputs + same seed = same video",
    "renderer": "auto: diffusion on a CUDA GPU when its weights are downloaded, else cpu (docs/diffusion.md)",
    "pitch_a": "A's voice pitch shift in semitones (-6 to 6)",
    "pitch_b": "B's voice pitch shift in semitones (-6 to 6)",
    "rate_a": "A's speaking rate (0.75 to 1.33)",
    "rate_b": "B's speaking rate (0.75 to 1.33)",
    "local_model": "GGUF for --llm local: a path or owner/repo:file.gguf on the Hub (WARMCHAT_LOCAL_LLM; default: "
    "the bundled SmolLM2-135M offline)",
}
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's convention: 128 + signal number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m warmchat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check what this machine is missing and how to fix it")
    r = sub.add_parser("render", help="render a conversation video from two portraits")
    r.add_argument("--portrait-a", required=True, type=Path, help="photo of person A (speaks first)")
    r.add_argument("--portrait-b", required=True, type=Path, help="photo of person B")
    r.add_argument("--emotion-a", default="neutral", help=f"A's starting emotion: {', '.join(EMOTIONS)}")
    r.add_argument("--emotion-b", default="neutral", help="B's starting emotion")
    r.add_argument("--name-a", default="Alex")
    r.add_argument("--name-b", default="Sam")
    r.add_argument("--topic", default="", help="what they talk about")
    r.add_argument(
        "--script",
        type=Path,
        help="a dialogue file (UTF-8) instead of generating: 'A: text' or 'B [sad 0.4]: text' lines; a recorded line "
        "'A [happy] <audio: takes/hello.m4a>: text' plays that file (WAV, MP3, M4A, FLAC, OGG, WebM; a path inside "
        "the script's folder) instead of the voice",
    )
    defaults = WarmChatConfig()
    for name, text in SETTING_HELP.items():
        kind = type(setting_default(name, defaults))
        choices = setting_choices(name) or (sorted(VOICES) if name in ("voice_a", "voice_b") else None)
        shown = setting_default(name, defaults)
        r.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            choices=choices,
            default=None,  # None = the config's default (which may come from the environment)
            help=f"{text} (default: {shown!r})" if shown != "" else text,
        )
    r.add_argument("--no-subtitles", dest="subtitles", action="store_false", default=None,
                   help="do not burn the line into the video")  # fmt: skip
    r.add_argument("--out", type=Path, default=Path("out/chat.mp4"), help="the .mp4 to write (default: %(default)s)")
    r.add_argument("-v", "--verbose", action="store_true")
    _add_batch_parser(sub)
    _add_animate(sub, defaults)
    return parser


def _add_animate(sub, defaults: WarmChatConfig) -> None:
    a = sub.add_parser("animate", help="render one portrait speaking a recorded speech file")
    a.add_argument("--portrait", required=True, type=Path, help="photo of the face")
    a.add_argument("--audio", required=True, type=Path, help="the speech: .wav, .mp3 or .m4a (also .flac, .ogg)")
    a.add_argument("--text", help="its transcript (optional): the lips then follow its phonemes aligned to the audio")
    a.add_argument("--emotion", default="neutral", help=f"the face's emotion: {', '.join(EMOTIONS)}")
    for name in ("size", "fps", "seed", "renderer"):
        shown = setting_default(name, defaults)
        help_text = f"{SETTING_HELP[name]} (default: {shown!r})"
        a.add_argument(f"--{name}", type=type(shown), choices=setting_choices(name), default=None, help=help_text)
    a.add_argument(
        "--out", type=Path, default=Path("out/animate.mp4"), help="the .mp4 to write (default: %(default)s)"
    )
    a.add_argument("-v", "--verbose", action="store_true")


def run_animate(args) -> int:
    """The `animate` command: one JSON line of what was written, or one clear error line."""
    from warmchat.animate import animate

    try:
        cfg = WarmChatConfig()
        apply_settings(cfg, {n: getattr(args, n) for n in ("size", "fps", "seed", "renderer")})
        result = animate(args.portrait, args.audio, args.out, text=args.text, emotion=args.emotion, config=cfg)
    except WarmChatError as exc:
        _report(exc)
        return 2
    print(json.dumps({"video": str(result.video), "duration_s": round(result.duration_s, 3), "frames": result.n_frames,
                      "fps": result.fps, "renderer": result.renderer, "mouth": result.mouth}, indent=1))  # fmt: skip
    return 0


def _option(field: str | None) -> str:
    return f"--{field.replace('_', '-')}" if field else ""


def _report(exc: WarmChatError) -> None:
    """One clear line: options named as the user typed them (`--size`, not `size`)."""
    message = str(exc)
    field = getattr(exc, "field", None)
    if field and message.startswith(f"{field}: "):
        message = f"{_option(field)}: {message[len(field) + 2 :]}"
    print(f"\nerror: {message}", file=sys.stderr)


def read_script(path: Path) -> str:
    """A script file's text; the only place WarmChat reads a script from disk."""
    if not path.is_file():
        raise InputError(f"script: file not found: {path}", "script")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"script: {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
            "save it as UTF-8",
            "script",
        ) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from warmchat.health import check_environment

        problems = check_environment()
        print("\n".join(f"- {p}" for p in problems) if problems else "Everything WarmChat's defaults need is here.")
        return 1 if problems else 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from warmchat.health import require_checkpoints
    from warmchat.paths import MissingCheckpoint
    from warmchat.pipeline import generate

    try:
        require_checkpoints()
    except MissingCheckpoint as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "batch":
        return _batch_main(args)
    if args.command == "animate":
        return run_animate(args)

    # Finish cleanly: the pipeline stops between render batches and joins the finished turns.
    stop, received = _stop_on_signals("saving the finished turns…")

    def progress(fraction: float, message: str) -> None:
        print(f"\r[{fraction * 100:5.1f}%] {message:<40}", end="", file=sys.stderr, flush=True)

    try:
        cfg = WarmChatConfig()
        settings = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}
        if args.script is not None and args.llm is None:
            settings["llm"] = "script"
        apply_settings(cfg, settings)
        script = read_script(args.script) if args.script is not None else None
        result = generate(
            args.portrait_a,
            args.portrait_b,
            emotion_a=args.emotion_a,
            emotion_b=args.emotion_b,
            topic=args.topic,
            turns=None,
            script=script,
            out=args.out,
            names={"A": args.name_a, "B": args.name_b},
            config=cfg,
            progress=progress,
            should_stop=stop.is_set,
            # Recorded lines are read from the script's own folder, and only from there.
            audio_dir=args.script.parent if args.script is not None else None,
        )
    except WarmChatError as exc:
        _report(exc)
        partial = getattr(exc, "partial_result", None)
        if partial is not None:
            print(f"a partial video of {_turns(len(partial.turns))} was saved to {partial.video}", file=sys.stderr)
        return EXIT_SIGNAL.get(received[0], 2) if received else 2
    print(file=sys.stderr)
    print(
        json.dumps(
            {
                "video": str(result.video),
                "timeline_png": str(result.timeline_png),
                "tree_json": str(result.tree_json),
                "srt": str(result.srt),
                "duration_s": round(result.duration_s, 3),
                "frames": result.n_frames,
                "renderer": result.renderer,
                "partial": result.partial,
                "turns": [{"speaker": t.speaker, "emotion": t.emotion, "text": t.text} for t in result.turns],
                "stage_seconds": {k: round(v, 2) for k, v in result.stage_seconds.items()},
            },
            indent=1,
        )
    )
    if result.partial:
        print(f"{result.note}: a partial video of {_turns(len(result.turns))} was saved to {result.video}",
              file=sys.stderr)  # fmt: skip
        return EXIT_SIGNAL.get(received[0], 1) if received else 1
    return 0


def _turns(n: int) -> str:
    return f"{n} finished turn{'' if n == 1 else 's'}"


def _add_batch_parser(sub) -> None:
    b = sub.add_parser(
        "batch",
        help="render every conversation of a manifest (JSONL, CSV or a JSON grid); resumable",
        description="Render every row of a manifest: a folder per row, results.jsonl, contact_sheet.png and "
        "index.html in --out. Columns are the render options without dashes (portrait_a, emotion_b, script, "
        "script_file, seed, size, ...); README 'Batch' has examples. Run it again to resume: finished rows are kept.",
    )
    b.add_argument("manifest", type=Path, help="a .jsonl or .csv file (a row per conversation) or a .json grid")
    b.add_argument("--out", type=Path, required=True, help="the batch folder (created; reused to resume)")
    b.add_argument("--workers", type=int, help="conversations at once (default: CPU cores / --cpus-per-task)")
    b.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="run the rows as Ray tasks: alone, on a Ray cluster started here for this run; with ADDRESS (e.g. "
        "auto, HEAD_IP:6379, ray://HEAD_IP:10001), on that running cluster",
    )  # fmt: skip
    b.add_argument("--cpus-per-task", type=int, default=1, help="cores per conversation (default: %(default)s)")
    b.add_argument("--retry-failed", action="store_true", help="run rows that failed on their inputs again too")
    b.add_argument("-v", "--verbose", action="store_true", help="let the workers' logs through")


def _stop_on_signals(what_happens: str) -> tuple[threading.Event, list[int]]:
    """SIGINT/SIGTERM set the returned event (a cooperative stop) and are recorded; a second one ends the process."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
        print(f"\nstopping ({signal.Signals(signum).name}): {what_happens}", file=sys.stderr)

    for sig in EXIT_SIGNAL:
        signal.signal(sig, on_signal)
    return stop, received


def _batch_main(args: argparse.Namespace) -> int:
    from warmchat.batch import batch

    stop, received = _stop_on_signals("finished rows are kept; run again to resume")
    tty = sys.stderr.isatty()
    last = [""]

    def progress(fraction: float, message: str) -> None:
        if tty:
            print(f"\r[{fraction * 100:5.1f}%] {message:<90}", end="", file=sys.stderr, flush=True)
        elif message.split(", elapsed")[0] != last[0]:  # in a log, a line only when a count changes
            last[0] = message.split(", elapsed")[0]
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)

    try:
        result = batch(
            args.manifest, args.out, workers=args.workers, ray_address=args.ray, cpus_per_task=args.cpus_per_task,
            retry_failed=args.retry_failed, progress=progress, should_stop=stop.is_set, verbose=args.verbose,
        )  # fmt: skip
    except WarmChatError as exc:
        print(f"error: {exc}", file=sys.stderr)  # the message names the manifest's line or the folder itself
        return 2
    if tty:
        print(file=sys.stderr)
    counts = {s: result.count(s) for s in ("ok", "partial", "failed")}
    print(
        json.dumps(
            {
                "out_dir": str(result.out_dir),
                "results": str(result.results_jsonl),
                "index_html": str(result.index_html),
                "contact_sheet": str(result.contact_sheet) if result.contact_sheet else None,
                "rows": len(result.rows),
                "ran": result.ran,
                "skipped": result.skipped,
                **counts,
                "stopped": result.stopped,
                "wall_s": round(result.wall_s, 2),
            },
            indent=1,
        )
    )
    for row, res in result.rows:
        if res is not None and res.status != "ok":
            print(f"{row.where} ({row.id}): {res.status}: {res.error or res.note}", file=sys.stderr)
    if received:
        return EXIT_SIGNAL.get(received[0], 130)
    return 1 if counts["failed"] or counts["partial"] else 0
