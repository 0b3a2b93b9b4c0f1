"""Dialogue quality and speed on a fixed rubric (warmchat/dialogue/rubric.py), for every backend available here.

20 topics x 2 seeds x 6 turns per backend: on-topic rate, repetition rate, name confusions, lines that answer the
previous line (chance = 0.5), emotion-label agreement with the offline text classifier, seconds per turn, and the
time to the first streamed text of the opening line. Backends: the local model through transformers, through
llama.cpp (xllamacpp) in transcript and JSON style for each GGUF (the bundled one plus any --gguf), and the openai
backend when OPENAI_BASE_URL or OPENAI_API_KEY is set.

Usage:
  python benchmarks/bench_dialogue.py [--topics 20] [--seeds 2] [--turns 6] [--only llamacpp] [--gguf F.gguf ...]
      [--lines out.json]     # also write every generated line (what data/dialogue_on_topic.tsv was labelled from)
  python benchmarks/bench_dialogue.py --rescore out.json   # the rubric again over lines written before
  python benchmarks/bench_dialogue.py --calibrate   # the on-topic threshold from the hand-labelled lines
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (topic, name A, name B, emotion A, emotion B): everyday topics, varied names and moods.
TOPICS = [
    ("weekend plans", "Alex", "Sam", "happy", "neutral"),
    ("the new bakery on our street", "Maya", "Leo", "happy", "happy"),
    ("a job interview tomorrow", "Nora", "Omar", "fearful", "neutral"),
    ("moving to another city", "Priya", "Tom", "sad", "neutral"),
    ("the broken washing machine", "Lucy", "Ben", "angry", "neutral"),
    ("learning to play the guitar", "Grace", "Jack", "happy", "surprised"),
    ("a surprise birthday party", "Emma", "Liam", "surprised", "happy"),
    ("the noisy neighbours upstairs", "Olivia", "Noah", "angry", "sad"),
    ("a hiking trip in the mountains", "Ava", "Ethan", "happy", "fearful"),
    ("our favourite old films", "Mia", "James", "neutral", "happy"),
    ("the price of groceries", "Sophia", "Daniel", "angry", "neutral"),
    ("a lost cat in the garden", "Laura", "Mark", "sad", "neutral"),
    ("starting a vegetable garden", "Lisa", "Paul", "happy", "neutral"),
    ("the football match last night", "Amy", "Peter", "surprised", "angry"),
    ("a first day at a new school", "Jane", "Ryan", "fearful", "happy"),
    ("cooking dinner for friends", "Julia", "Adam", "happy", "neutral"),
    ("a delayed train home", "Ella", "Max", "angry", "sad"),
    ("adopting a puppy", "Zoe", "Luke", "happy", "surprised"),
    ("a cold and rainy holiday", "Chloe", "Jake", "sad", "neutral"),
    ("saving money for a trip", "Lily", "Ian", "neutral", "happy"),
]


def run_backend(label: str, config, topics: int, seeds: int, turns: int) -> tuple[dict, list]:
    """(rubric scores, conversations) of one backend configuration."""
    from warmchat.dialogue import generate_dialogue, make_backend
    from warmchat.dialogue.rubric import Conversation, score

    config.turns = turns
    t0 = time.perf_counter()
    backend = make_backend(config)
    load_s = time.perf_counter() - t0
    conversations = []
    for topic, name_a, name_b, emo_a, emo_b in TOPICS[:topics]:
        for seed in range(seeds):
            conv = Conversation(topic, {"A": name_a, "B": name_b}, seed)
            clock = [time.perf_counter()]

            def on_text(_speaker, _text, conv=conv, clock=clock):
                if conv.first_text_s is None and not conv.lines:
                    conv.first_text_s = time.perf_counter() - clock[0]

            def on_turn(turn, conv=conv, clock=clock):
                now = time.perf_counter()
                conv.seconds.append(now - clock[0])
                clock[0] = now
                conv.speakers.append(turn.speaker)
                conv.lines.append(turn.text)
                conv.emotions.append(turn.emotion)

            generate_dialogue(
                topic, emo_a, emo_b, config, seed, conv.names, backend=backend, on_turn=on_turn, on_text=on_text
            )
            conversations.append(conv)
        print(f"  {label}: {topic!r} done", file=sys.stderr, flush=True)
    if hasattr(backend, "close"):
        backend.close()
    result = {"backend": label, "load_s": round(load_s, 2), **score(conversations)}
    return result, conversations


def configurations(only: str, ggufs: list[str]) -> list[tuple[str, object]]:
    """(label, DialogueConfig) for every backend that can run here."""
    from warmchat.config import DialogueConfig
    from warmchat.dialogue import bundled_gguf
    from warmchat.dialogue.llamacpp import engine_available

    out = []
    files = [str(g) for g in [bundled_gguf()] if g] + ggufs
    for gguf in files:
        name = Path(gguf.split(":")[-1]).stem
        if engine_available():
            for style in ("transcript", "json"):
                cfg = DialogueConfig(local_model=gguf, local_engine="llamacpp", local_prompt=style)
                out.append((f"llamacpp {style} {name}", cfg))
            cfg = DialogueConfig(
                local_model=gguf, local_engine="llamacpp", local_prompt="transcript", topic_anchor=False
            )
            out.append((f"llamacpp transcript-unanchored {name}", cfg))
        cfg = DialogueConfig(local_model=gguf, local_engine="transformers", local_prompt="transcript")
        out.append((f"transformers transcript {name}", cfg))
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        cfg = DialogueConfig(backend="openai")
        out.append((f"openai {cfg.llm_model}", cfg))
    return [(label, cfg) for label, cfg in out if not only or only in label]


def calibrate() -> None:
    """Print the on-topic threshold that best separates the hand-labelled lines, and how well each threshold does."""
    import numpy as np

    from warmchat import text_emotion
    from warmchat.dialogue.rubric import ON_TOPIC_LABELS, ON_TOPIC_THRESHOLD, calibrate_threshold, read_on_topic_labels

    labels, topics, lines = read_on_topic_labels()
    sims = np.einsum("nd,nd->n", text_emotion.embed(lines), text_emotion.embed(topics))
    y = np.array(labels)
    threshold, balanced = calibrate_threshold(sims, y)
    current = 0.5 * ((sims[y] >= ON_TOPIC_THRESHOLD).mean() + (sims[~y] < ON_TOPIC_THRESHOLD).mean())
    print(
        json.dumps(
            {
                "labelled_lines": len(lines),
                "on_topic_lines": int(y.sum()),
                "file": str(ON_TOPIC_LABELS.relative_to(ROOT)),
                "best_threshold": round(threshold, 3),
                "balanced_accuracy_at_best": round(balanced, 3),
                "threshold_in_use": ON_TOPIC_THRESHOLD,
                "balanced_accuracy_in_use": round(float(current), 3),
                "similarity_on_topic_median": round(float(np.median(sims[y])), 3),
                "similarity_off_topic_median": round(float(np.median(sims[~y])), 3),
            },
            indent=1,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--only", default="", help="run only backends whose label contains this text")
    parser.add_argument("--gguf", nargs="*", default=[], help="more GGUF files (or owner/repo:file.gguf on the Hub)")
    parser.add_argument("--lines", type=Path, help="write every generated line to this JSON file")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--rescore", type=Path, help="score the lines of a --lines file instead of generating")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return

    results, dump = [], {}
    if args.rescore:
        from warmchat.dialogue.rubric import Conversation, score

        for label, convs in json.loads(args.rescore.read_text()).items():
            results.append({"backend": label, **score([Conversation(**c) for c in convs])})
    for label, cfg in [] if args.rescore else configurations(args.only, args.gguf):
        print(f"running {label}", file=sys.stderr, flush=True)
        result, conversations = run_backend(label, cfg, args.topics, args.seeds, args.turns)
        results.append(result)
        dump[label] = [asdict(c) for c in conversations]
        print(json.dumps(result), file=sys.stderr, flush=True)
        if args.lines:  # after every backend: a later one failing loses nothing
            args.lines.write_text(json.dumps(dump, indent=1))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{args.topics} topics x {args.seeds} seeds x {args.turns} turns per backend\n")
    cols = [
        ("backend", "backend"),
        ("on_topic", "on topic"),
        ("repeat", "repeats"),
        ("name_confusion", "name confusions"),
        ("answers_previous", "answers previous (chance 0.5)"),
        ("emotion_agrees", "emotion = classifier"),
        ("s_per_turn", "s / turn"),
        ("first_text_s", "first text s"),
        ("words_per_line", "words / line"),
    ]
    print("| " + " | ".join(title for _, title in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r.get(key, "")) for key, _ in cols) + " |")


if __name__ == "__main__":
    main()
