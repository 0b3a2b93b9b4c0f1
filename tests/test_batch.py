"""Batch: a manifest rendered on a process pool and on a local Ray cluster, interrupted, resumed, reproducible."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, decode_video
from PIL import Image

from warmchat import InputError, WarmChatConfig, generate
from warmchat.batch import batch, expand_grid, read_manifest
from warmchat.compose import CAPTION_H
from warmchat.config import apply_settings

SIZE = 128
# Row 1: names with markup (the index must escape them). Row 2: no face in portrait B, so it fails seconds before
# row 1 (rendered beside it) can finish: that is when the test presses Ctrl-C. Row 3: no subtitles.
ROWS = [
    {
        "id": "eileen-grace",
        "portrait_a": str(EXAMPLES / "astronaut.png"),
        "portrait_b": str(EXAMPLES / "grace_hopper.jpg"),
        "name_a": "Ann <b>&",
        "name_b": "Grace",
        "emotion_a": "happy",
        "script": "A: Hi there!\nB [happy]: Hello, nice to see you.",
        "size": SIZE,
        "seed": 1,
    },
    {
        "portrait_a": str(EXAMPLES / "mona_lisa.jpg"),
        "portrait_b": "noise.png",  # relative: read from the manifest's folder
        "script": "A: Hello.\nB: Hi.",
        "size": SIZE,
    },
    {
        "portrait_a": str(EXAMPLES / "mona_lisa.jpg"),
        "portrait_b": str(EXAMPLES / "girl_with_a_pearl_earring.jpg"),
        "script": "A: Good morning.\nB [sad]: Is it?\nA [happy]: The light is lovely.",
        "size": SIZE,
        "seed": 2,
        "subtitles": False,
    },
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(results: Path) -> list[dict]:
    return [json.loads(line) for line in results.read_text().splitlines()]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("manifest")
    shutil.copy(ROOT / "tests" / "data" / "noise.png", folder / "noise.png")
    path = folder / "conversations.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


@pytest.fixture(scope="module")
def pool_run(manifest, tmp_path_factory) -> dict:
    """The CLI on a 2-worker pool, stopped with Ctrl-C after its first row; resumed; then run once more."""
    out = tmp_path_factory.mktemp("pool")
    env = {**os.environ, "WARMCHAT_CACHE_DIR": str(out / "speech-cache")}  # speech made here, not reused
    cmd = [sys.executable, "-m", "warmchat", "batch", str(manifest), "--out", str(out / "batch"), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = out / "batch" / "results.jsonl"
    deadline = time.monotonic() + 600
    while not (results.is_file() and results.read_text().endswith("\n")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no row finished after 10 minutes"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    before = _lines(results)
    videos_before = {r["id"]: out / "batch" / r["outputs"]["video"] for r in before if r["status"] == "ok"}
    mtimes_before = {i: p.stat().st_mtime_ns for i, p in videos_before.items()}
    folders_before = {p.name for p in (out / "batch").iterdir() if p.is_dir()} - {"logs"}

    os.environ["WARMCHAT_CACHE_DIR"] = env["WARMCHAT_CACHE_DIR"]
    try:
        resumed = batch(manifest, out / "batch", workers=2)
        text_after_resume = results.read_text()
        mtimes_after_resume = {p.parent.name: p.stat().st_mtime_ns for p in (out / "batch").glob("*/conversation.mp4")}
        again = batch(manifest, out / "batch", workers=2)
    finally:
        del os.environ["WARMCHAT_CACHE_DIR"]
    return {
        "out": out / "batch", "returncode": proc.returncode, "stderr": stderr, "before": before,
        "mtimes_before": mtimes_before, "folders_before": folders_before, "resumed": resumed, "again": again,
        "text_after_resume": text_after_resume, "mtimes_after_resume": mtimes_after_resume,
    }  # fmt: skip


def test_manifest_formats_grid_and_ids(tmp_path):
    a, b = EXAMPLES / "astronaut.png", EXAMPLES / "grace_hopper.jpg"
    (tmp_path / "m.csv").write_text(
        f"portrait_a,portrait_b,size,subtitles,seed,emotion-b\n{a},{b},128,false,3,sad\n{a},{b},,,4,\n"
    )
    first = {
        "portrait_a": str(a),
        "portrait_b": str(b),
        "size": 128,
        "subtitles": False,
        "seed": 3,
        "emotion_b": "sad",
    }
    (tmp_path / "m.jsonl").write_text(json.dumps(first) + "\n")
    csv_rows, jsonl_rows = read_manifest(tmp_path / "m.csv"), read_manifest(tmp_path / "m.jsonl")
    assert csv_rows[0].values == first  # text cells converted to the settings' types
    assert csv_rows[1].values == {"portrait_a": str(a), "portrait_b": str(b), "seed": 4}  # empty cells: defaults
    # The id is made from the content, so the same conversation has the same folder whatever the file type.
    assert csv_rows[0].id == jsonl_rows[0].id and csv_rows[0].id.startswith("astronaut-grace_hopper-")
    assert csv_rows[0].id != csv_rows[1].id and csv_rows[0].where == "m.csv line 2"

    grid = {"portraits": ["a.png", "b.png", "c.png"], "emotion_a": ["happy", "sad"], "seed": 7}
    rows = expand_grid(grid)
    assert len(rows) == 6 and all(r["seed"] == 7 for r in rows)
    assert {(r["portrait_a"], r["portrait_b"]) for r in rows} == {("a.png", "b.png"), ("a.png", "c.png"),
                                                                  ("b.png", "c.png")}  # fmt: skip
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    assert len({r.id for r in read_manifest(tmp_path / "grid.json")}) == 6

    (tmp_path / "bad.csv").write_text(f"portrait_a,portrait_b,seed\n{a},{b},1\n{a},{b},2,extra\n")
    with pytest.raises(InputError, match=r"bad\.csv line 3 has more cells"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "typo.jsonl").write_text(
        json.dumps({"portrait_a": str(a), "portrait_b": str(b)}) + "\n"
        + json.dumps({"portrait_a": str(a), "portrait_b": str(b), "sise": 256}) + "\n"
    )  # fmt: skip
    with pytest.raises(InputError, match=r"typo\.jsonl line 2: unknown column 'sise'; the columns are: id, "):
        read_manifest(tmp_path / "typo.jsonl")
    (tmp_path / "twice.jsonl").write_text((json.dumps({"portrait_a": str(a), "portrait_b": str(b)}) + "\n") * 2)
    with pytest.raises(InputError, match=r"line 1 and twice\.jsonl line 2 are the same conversation"):
        read_manifest(tmp_path / "twice.jsonl")
    (tmp_path / "half.jsonl").write_text(json.dumps({"portrait_a": str(a)}) + "\n")
    with pytest.raises(InputError, match=r"half\.jsonl line 1: column 'portrait_b' is missing"):
        read_manifest(tmp_path / "half.jsonl")


def test_pool_renders_two_videos_and_one_clear_error(pool_run, manifest):
    out = pool_run["out"]
    rows = read_manifest(manifest)
    latest = {r.id: r for _, r in pool_run["resumed"].rows}
    assert [latest[row.id].status for row in rows] == ["ok", "failed", "ok"]
    bad = latest[rows[1].id]
    assert bad.error.startswith("Portrait B: no human face found.") and bad.error_field == "portrait_b"
    assert bad.error_kind == "input" and not bad.outputs
    for row, height in ((rows[0], SIZE + CAPTION_H), (rows[2], SIZE)):  # row 3 has no subtitles: no caption strip
        result = latest[row.id]
        assert set(result.outputs) == {"video", "srt", "tree_json", "timeline_png", "poster"}
        assert all((out / p).is_file() for p in result.outputs.values())
        assert result.outputs["video"] == f"{row.id}/conversation.mp4"
        frames = decode_video(out / result.outputs["video"], 2 * SIZE, height)
        assert len(frames) == result.n_frames == round(result.duration_s * 25)
        assert frames.std() > 10  # faces, not a blank frame
        assert result.stage_seconds["render"] > 0 and result.wall_s > 0 and result.worker_rss_mb > 100
    assert "Grace" in (out / latest[rows[0].id].outputs["srt"]).read_text()
    assert not (out / ".staging").exists()


def test_ctrl_c_keeps_finished_rows_and_resume_runs_only_the_rest(pool_run, manifest):
    assert pool_run["returncode"] == 130, pool_run["stderr"][-2000:]
    assert "finished rows are kept; run again to resume" in pool_run["stderr"]
    before = pool_run["before"]
    finished = {r["id"] for r in before}
    all_ids = {row.id for row in read_manifest(manifest)}
    assert before and finished < all_ids  # stopped with a row finished (the failed one) and rows still to do
    assert pool_run["folders_before"] == set(pool_run["mtimes_before"])  # rows in flight left nothing behind
    resumed = pool_run["resumed"]
    assert resumed.ran == len(all_ids - finished) and resumed.skipped == len(finished) and not resumed.stopped
    # The rows finished before Ctrl-C were not rendered again: no new line for them, the same files.
    new_lines = _lines(pool_run["out"] / "results.jsonl")[len(before) :]
    assert {r["id"] for r in new_lines} == all_ids - finished
    for row_id, mtime in pool_run["mtimes_before"].items():
        assert (pool_run["out"] / row_id / "conversation.mp4").stat().st_mtime_ns == mtime


def test_resume_after_a_complete_run_redoes_nothing(pool_run):
    again = pool_run["again"]
    assert again.ran == 0 and again.skipped == 3  # the no-face row is not retried: same inputs, same error
    assert (pool_run["out"] / "results.jsonl").read_text() == pool_run["text_after_resume"]
    videos = {p.parent.name: p.stat().st_mtime_ns for p in pool_run["out"].glob("*/conversation.mp4")}
    assert len(videos) == 2 and videos == pool_run["mtimes_after_resume"]  # not written again
    assert again.count("ok") == 2 and again.count("failed") == 1


def test_contact_sheet_and_index(pool_run, manifest):
    out = pool_run["out"]
    rows = read_manifest(manifest)
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size[0] == 3 * 320  # a tile per conversation, the failed one included
        pixels = np.asarray(sheet.convert("RGB"))
    assert pixels[60:, :320].std() > 20 and pixels[60:, 320:640].std() < 5  # a frame; a blank for the failure
    page = (out / "index.html").read_text()
    assert page.count("<video ") == 2
    assert f'src="{rows[0].id}/conversation.mp4"' in page and str(out) not in page  # relative links only
    assert "Ann &lt;b&gt;&amp; &amp; Grace" in page and "<b>&" not in page
    assert "Portrait B: no human face found." in page


@pytest.fixture
def speech_cache(tmp_path, monkeypatch):
    """A fresh speech cache: the speech is synthesised again, not read from an earlier render."""
    monkeypatch.setenv("WARMCHAT_CACHE_DIR", str(tmp_path / "speech-cache"))


def test_local_ray_cluster_gives_the_same_videos(pool_run, manifest, tmp_path, speech_cache):
    result = batch(manifest, tmp_path / "ray", workers=2, ray_address="local")
    rows = read_manifest(manifest)
    latest = {row.id: r for row, r in result.rows}
    assert [latest[row.id].status for row in rows] == ["ok", "failed", "ok"]
    assert latest[rows[1].id].error.startswith("Portrait B: no human face found.")
    for row in (rows[0], rows[2]):
        video = latest[row.id].outputs["video"]
        assert _sha(tmp_path / "ray" / video) == _sha(pool_run["out"] / video)  # same bytes as on the pool
    assert len({r.worker for r in latest.values()}) >= 1 and (tmp_path / "ray" / "index.html").is_file()
    import ray

    assert not ray.is_initialized()  # the cluster the batch started is shut down


def test_a_row_alone_gives_the_same_video_as_in_the_batch(pool_run, tmp_path, speech_cache):
    row = ROWS[0]
    cfg = apply_settings(WarmChatConfig(), {"size": row["size"], "seed": row["seed"]})
    alone = generate(
        row["portrait_a"], row["portrait_b"], emotion_a=row["emotion_a"], script=row["script"],
        names={"A": row["name_a"], "B": row["name_b"]}, out=tmp_path / "alone.mp4", config=cfg,
    )  # fmt: skip
    assert _sha(alone.video) == _sha(pool_run["out"] / row["id"] / "conversation.mp4")


def test_a_missing_photo_fails_its_row_and_a_busy_folder_is_refused(tmp_path):
    row = {"portrait_a": str(EXAMPLES / "astronaut.png"), "portrait_b": "gone.png", "script": "A: Hi.\nB: Hello."}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    result = batch(tmp_path / "m.jsonl", tmp_path / "out", workers=1)
    ((_, failed),) = result.rows
    assert failed.status == "failed" and failed.error == f"Portrait B: file not found: {tmp_path / 'gone.png'}"
    assert json.loads((tmp_path / "out" / "results.jsonl").read_text())["error"] == failed.error
    assert "file not found" in (tmp_path / "out" / "index.html").read_text()

    from warmchat.batch import _exclusive

    with _exclusive(tmp_path / "out"), pytest.raises(InputError, match="another batch is running in"):
        batch(tmp_path / "m.jsonl", tmp_path / "out")
