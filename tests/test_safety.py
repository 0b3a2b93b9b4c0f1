"""Hostile or clumsy input: clear errors before any work, script text never read as a file, nothing lost on a stop,
an error or a signal, and bounded work per request."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, decode_video

from warmchat import InputError, WarmChatConfig, WarmChatError
from warmchat.config import app_limits
from warmchat.pipeline import SegmentRendered, generate, iter_generate, output_paths

SCRIPT = "A [happy]: Good morning!\nB [neutral]: Morning. Coffee?\nA [happy]: Yes please, a big one."


def _config(**limits) -> WarmChatConfig:
    cfg = WarmChatConfig(seed=1)
    cfg.face.size = 128
    for name, value in limits.items():
        setattr(cfg.limits, name, value)
    return cfg


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    base = ["--portrait-a", str(EXAMPLES / "astronaut.png"), "--portrait-b", str(EXAMPLES / "grace_hopper.jpg")]
    return subprocess.run([sys.executable, "-m", "warmchat", "render", *base, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--size", "0"], "--size"),
        (["--size", "-100"], "--size"),
        (["--size", "257"], "--size"),
        (["--fps", "0"], "--fps"),
        (["--fps", "-5"], "--fps"),
        (["--seed", "-1"], "--seed"),
        (["--out", "OUT/chat.avi"], "--out"),
    ],
)
def test_cli_bad_option_is_one_clear_line_before_any_work(tmp_path, args, named):
    script = tmp_path / "s.txt"
    script.write_text(SCRIPT)
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    out = ["--out", str(tmp_path / "chat.mp4")] if "--out" not in args else []
    proc = _cli("--script", str(script), *out, *args)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [script]  # nothing was rendered or written


def test_cli_out_in_a_folder_that_cannot_exist(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    script = tmp_path / "s.txt"
    script.write_text(SCRIPT)
    proc = _cli("--script", str(script), "--out", str(blocker / "sub" / "chat.mp4"))
    assert proc.returncode == 2 and "error: --out: cannot create the folder" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("A: café au lait\n".encode("latin-1"), "is not UTF-8 text"),
        (b"A [sad 0.4.4]: hello there\n", "script line 1"),
        (b"A: fine\nB [sad .]: hello there\n", "script line 2"),
        ("A: 你好世界\n".encode(), "only English"),
    ],
)
def test_cli_bad_script_names_the_file_or_line(tmp_path, content, expected):
    script = tmp_path / "s.txt"
    script.write_bytes(content)
    proc = _cli("--script", str(script), "--out", str(tmp_path / "c.mp4"))
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "c.mp4").exists()


def test_script_text_that_names_a_file_is_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("A: the launch code is 1234\nB: keep it safe\n")
    with pytest.raises(InputError) as info:
        generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=str(secret),
                 out=tmp_path / "c.mp4", config=_config())  # fmt: skip
    assert info.value.field == "script" and "launch code" not in str(info.value)
    with pytest.raises(InputError, match="text, not a path"):
        generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=secret, out=tmp_path / "c.mp4",
                 config=_config())  # fmt: skip


def test_script_over_the_line_limits_is_refused_before_any_work(tmp_path):
    limits = app_limits()
    long_line = "A: " + " ".join(["word"] * (limits.line_words + 1))
    many = "\n".join(f"{'AB'[i % 2]}: line number {i}" for i in range(limits.script_lines + 1))
    for script, words in ((long_line, f"{limits.line_words} words"), (many, f"{limits.script_lines}")):
        cfg = _config()
        cfg.limits = app_limits()
        with pytest.raises(InputError, match=words) as info:
            generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=script,
                     out=tmp_path / "c.mp4", config=cfg)  # fmt: skip
        assert info.value.field == "script"
    assert not any(tmp_path.iterdir())


def _check_partial(out: Path, n_turns: int, end_s: float) -> None:
    paths = output_paths(out)
    frames = decode_video(out, 256, 128 + 96)
    assert abs(len(frames) - round(end_s * 25)) <= 1
    tree = json.loads(paths["tree_json"].read_text())
    assert len([n for n in tree["nodes"] if n["speaker"]]) == n_turns
    assert paths["srt"].read_text().count("-->") == n_turns
    assert paths["timeline_png"].is_file() and not out.with_suffix(".parts").exists()


def test_stop_during_turn_two_returns_turn_one(tmp_path):
    out, rendered = tmp_path / "c.mp4", []
    events = iter_generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=SCRIPT, out=out,
                           config=_config(), should_stop=lambda: bool(rendered))  # fmt: skip
    for event in events:
        if isinstance(event, SegmentRendered):
            rendered.append(event)
    result = event.result
    assert result.partial and "stopped on request" in result.note and len(result.turns) == 1
    _check_partial(out, 1, rendered[0].end_s)


def test_error_at_turn_two_keeps_turn_one(tmp_path):
    out = tmp_path / "c.mp4"

    def progress(fraction: float, message: str) -> None:
        if "voicing turn 2" in message:
            raise RuntimeError("the speech engine crashed")

    with pytest.raises(RuntimeError, match="crashed") as info:
        generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=SCRIPT, out=out,
                 config=_config(), progress=progress)  # fmt: skip
    partial = info.value.partial_result
    assert partial is not None and partial.partial and [t.text for t in partial.turns] == ["Good morning!"]
    _check_partial(out, 1, partial.duration_s)


def test_conversation_length_limit_stops_with_a_partial_result(tmp_path):
    out = tmp_path / "c.mp4"
    result = generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=SCRIPT, out=out,
                      config=_config(speech_s=3.0))  # fmt: skip
    assert result.partial and "limit of 3 s" in result.note
    assert 1 <= len(result.turns) < 3 and result.duration_s <= 3.0 + 0.05
    _check_partial(out, len(result.turns), result.duration_s)


def test_nothing_finished_is_a_clear_error(tmp_path):
    with pytest.raises(WarmChatError, match="no turn was finished"):
        generate(EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg", script=SCRIPT, out=tmp_path / "c.mp4",
                 config=_config(), should_stop=lambda: True)  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_signal_saves_the_finished_turns(tmp_path, sig):
    script = tmp_path / "s.txt"
    script.write_text(SCRIPT)
    out = tmp_path / "c.mp4"
    cmd = [sys.executable, "-m", "warmchat", "render", "--portrait-a", str(EXAMPLES / "astronaut.png"),
           "--portrait-b", str(EXAMPLES / "grace_hopper.jpg"), "--script", str(script), "--size", "128",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    deadline = time.time() + 180
    while "rendering turn 2" not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stderr.read(1)  # progress lines end in \r: read characters, not lines
    assert "rendering turn 2" in seen, seen[-500:]
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    stderr = seen + stderr
    assert proc.returncode == 128 + sig, stderr[-1000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    summary = json.loads(stdout)
    n = len(summary["turns"])  # the turn being rendered when the signal came may still finish its last batch
    assert summary["partial"] and 1 <= n < 3 and f"partial video of {n} finished turn" in stderr
    _check_partial(out, n, summary["duration_s"])
