"""Command line: `python -m warmchat render ...` renders one conversation."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from warmchat.config import WarmChatConfig
from warmchat.emotions import EMOTIONS
from warmchat.errors import WarmChatError
from warmchat.speech import VOICES


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
    r.add_argument("--turns", type=int, default=4, help="lines to generate (2-30)")
    r.add_argument("--script", type=Path, help="a dialogue file instead of generating: 'A: text' / 'B [sad]: text'")
    r.add_argument(
        "--llm",
        choices=["local", "openai", "script"],
        help="who writes the lines: the offline model (default), an OpenAI-compatible server (key from the "
        "OPENAI_API_KEY environment variable, never a flag), or --script",
    )
    r.add_argument("--llm-model", help="model name for --llm openai (default: WARMCHAT_LLM_MODEL or gpt-4o-mini)")
    r.add_argument("--llm-base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (OPENAI_BASE_URL)")
    r.add_argument("--voice-a", default="hibari", choices=sorted(VOICES))
    r.add_argument("--voice-b", default="piper-joe", choices=sorted(VOICES))
    r.add_argument("--tts", default="offline", choices=["offline", "openai"], help="speech backend")
    r.add_argument("--openai-voice-a", default="coral", help="A's voice with --tts openai (e.g. coral, nova)")
    r.add_argument("--openai-voice-b", default="onyx", help="B's voice with --tts openai (e.g. onyx, ash)")
    r.add_argument("--size", type=int, default=512, help="pixels per face")
    r.add_argument("--fps", type=int, default=25)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--renderer",
        default="auto",
        choices=["auto", "cpu", "diffusion"],
        help="auto: diffusion on a CUDA GPU when its weights are downloaded, else cpu (see docs/diffusion.md)",
    )
    r.add_argument("--no-subtitles", action="store_true", help="do not burn the line into the video")
    r.add_argument("--out", type=Path, default=Path("out/chat.mp4"))
    r.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from warmchat.health import check_environment

        problems = check_environment()
        print("\n".join(f"- {p}" for p in problems) if problems else "Everything WarmChat's defaults need is here.")
        return 1 if problems else 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from warmchat.pipeline import generate

    cfg = WarmChatConfig(seed=args.seed)
    cfg.face.size = args.size
    cfg.compose.fps = args.fps
    cfg.render.renderer = args.renderer
    cfg.compose.subtitles = not args.no_subtitles
    cfg.speech.voice_a, cfg.speech.voice_b = args.voice_a, args.voice_b
    cfg.speech.backend = args.tts
    cfg.speech.openai_voice_a, cfg.speech.openai_voice_b = args.openai_voice_a, args.openai_voice_b
    cfg.dialogue.backend = args.llm or ("script" if args.script else cfg.dialogue.backend)
    cfg.dialogue.llm_model = args.llm_model or cfg.dialogue.llm_model
    cfg.dialogue.llm_base_url = args.llm_base_url or cfg.dialogue.llm_base_url
    script = None
    if args.script is not None:
        if not args.script.is_file():
            print(f"error: script file not found: {args.script}", file=sys.stderr)
            return 2
        script = args.script.read_text(encoding="utf-8")

    def progress(fraction: float, message: str) -> None:
        print(f"\r[{fraction * 100:5.1f}%] {message:<40}", end="", file=sys.stderr, flush=True)

    try:
        result = generate(
            args.portrait_a,
            args.portrait_b,
            emotion_a=args.emotion_a,
            emotion_b=args.emotion_b,
            topic=args.topic,
            turns=args.turns,
            script=script,
            out=args.out,
            names={"A": args.name_a, "B": args.name_b},
            config=cfg,
            progress=progress,
        )
    except WarmChatError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
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
                "turns": [{"speaker": t.speaker, "emotion": t.emotion, "text": t.text} for t in result.turns],
                "stage_seconds": {k: round(v, 2) for k, v in result.stage_seconds.items()},
            },
            indent=1,
        )
    )
    return 0
