"""Chat latency: seconds from `Chat.reply()` to the answer's segment being ready, per stage, at two face sizes.

Run: python benchmarks/bench_chat.py [--sizes 256 512] [--llm local]
Models are loaded before timing (as in the app after its first request); each reply is a short typed line. Prints
JSON: per size, each reply's seconds (wall clock, to the answer's segment), the CPU seconds of the whole reply (all
threads and the ffmpeg encoders, exchange MP4 included: on a busy shared machine, the figure that does not depend on
the other work), the answer's word count and where the time went.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LINES = ("Hello! How are you feeling today?", "I went to the museum yesterday.", "What is your favourite colour?")


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children (ffmpeg encoding)."""
    import resource

    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--llm", default="local")
    args = parser.parse_args()
    import torch

    from warmchat import Chat, WarmChatConfig

    torch.set_num_threads(1)  # on 2 cores, one sampling thread is fastest (docs/dialogue.md)
    report = {"cpus": os.cpu_count(), "llm": args.llm, "sizes": {}}
    for size in args.sizes:
        cfg = WarmChatConfig()
        cfg.face.size, cfg.render.renderer, cfg.dialogue.backend = size, "cpu", args.llm
        t0 = time.perf_counter()
        chat = Chat(ROOT / "examples" / "mona_lisa.jpg", name="Lisa", emotion="happy", config=cfg,
                    workdir=tempfile.mkdtemp(prefix="bench-chat-"))  # fmt: skip
        setup = time.perf_counter() - t0
        replies = []
        for line in LINES:
            cpu = _cpu_seconds()
            turn = chat.reply(line)
            cpu = _cpu_seconds() - cpu  # what the reply costs whatever else the machine runs
            replies.append({"seconds": round(turn.seconds, 2), "cpu_s": round(cpu, 2),
                            "answer_words": len(turn.answer.text.split()),
                            "video_s": round(turn.end_s - turn.start_s, 2), "stages": turn.stage_seconds})  # fmt: skip
        chat.close()
        report["sizes"][size] = {"setup_s": round(setup, 1), "replies": replies}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
