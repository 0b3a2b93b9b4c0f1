"""Batch rendering: many conversations from a manifest, on a local process pool or a Ray cluster, resumable.

A manifest is a JSONL file (one JSON object per line), a CSV file (a header row, then one row per conversation) or
a JSON file: an array of row objects, or a grid object whose list values expand to every combination. Columns are
the arguments of `warmchat.generate` and the flat settings of `warmchat.config.SETTINGS` (the CLI's option names):

    id            the row's folder name (default: the portraits' names + a hash of the row: stable across runs)
    portrait_a    photo of A (required); relative paths are read from the manifest's folder
    portrait_b    photo of B (required)
    emotion_a, emotion_b, name_a, name_b, topic
    script        the dialogue's text ("A: ...\\nB [sad]: ...");  script_file: a file holding it instead
    seed, size, fps, subtitles, renderer, turns, llm, llm_model, llm_base_url, tts, voice_a, voice_b,
    openai_voice_a, openai_voice_b

Missing columns take the defaults of `WarmChatConfig` (and of `generate`); an unknown column is an error naming the
row and column. Each task carries its portraits and script by value and returns its files by value, so the same task
function runs in a local worker process or on any node of a Ray cluster, with no shared filesystem.

Output in `out_dir`: a folder per row (`conversation.mp4`, `.srt`, `.tree.json`, `.timeline.png`, `poster.jpg`),
`results.jsonl` (one line per finished row, appended as rows finish), `contact_sheet.png` and `index.html`.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from warmchat.config import SETTINGS, WarmChatConfig, apply_settings, setting_default
from warmchat.errors import BackendUnavailable, InputError, WarmChatError

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Status = Literal["ok", "failed", "partial"]

# Columns that are arguments of `generate` rather than settings; with SETTINGS, every column a row may have.
CALL_FIELDS = ("portrait_a", "portrait_b", "emotion_a", "emotion_b", "name_a", "name_b", "topic", "script")
COLUMNS = ("id", *CALL_FIELDS, "script_file", *SETTINGS)
GRID_PAIRS = "portraits"  # grid key: a list of photos, expanded to every pair of them
MAX_ROWS = 100_000  # a grid this large is almost surely a mistake (and results.jsonl would be huge)
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
VIDEO_NAME = "conversation.mp4"
POSTER_NAME = "poster.jpg"
RESULTS_NAME = "results.jsonl"
SHEET_NAME = "contact_sheet.png"
INDEX_NAME = "index.html"
STAGING = ".staging"  # rows' files are written here, then moved into place whole
SHEET_TILE_W = 320  # pixels per conversation in the contact sheet


@dataclass
class Row:
    """One conversation of a manifest, its values checked for names (not for meaning: the worker does that)."""

    number: int  # line (JSONL, CSV) or position (JSON array, grid) in the manifest: what messages name
    id: str
    values: dict[str, Any]  # column -> value, settings converted to their types; no "id"
    where: str  # e.g. "manifest.csv line 3", for messages

    def label(self) -> str:
        """A short description for the contact sheet and the index."""
        names = f"{self.values.get('name_a') or 'Alex'} & {self.values.get('name_b') or 'Sam'}"
        moods = f"{self.values.get('emotion_a') or 'neutral'}/{self.values.get('emotion_b') or 'neutral'}"
        seed = self.values.get("seed")
        return f"{names} · {moods}" + (f" · seed {seed}" if seed is not None else "")


@dataclass
class RowTask:
    """Everything a worker needs for one row, by value: portraits and script travel with the task."""

    row_id: str
    number: int
    portraits: dict[str, tuple[str, bytes]]  # "A"/"B" -> (file name, file bytes)
    script: str | None
    call: dict[str, Any]  # emotion_a, emotion_b, topic, names
    settings: dict[str, Any]  # SETTINGS name -> value
    cpus: int  # threads the row may use (its resource hint)
    row_hash: str


@dataclass
class RowResult:
    """One line of results.jsonl: how a row went."""

    id: str
    row: int  # its number in the manifest
    status: Status
    error: str = ""  # why it failed (or why a partial result stopped), a sentence for a person
    error_kind: str = ""  # "input": the row's inputs (same row, same error: not retried); "error"; "crash"
    error_field: str = ""  # the input an input error is about (portrait_a, script, size, ...)
    note: str = ""  # why a partial result stopped early
    wall_s: float = 0.0  # seconds the worker spent on the row (its first row includes loading the models)
    cpu_s: float = 0.0  # CPU seconds the worker and its ffmpeg processes used for the row (unlike wall_s, not
    # stretched when other work shares the machine)
    duration_s: float = 0.0  # length of the conversation video, seconds
    n_frames: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # video, srt, tree_json, timeline_png, poster: relative
    row_hash: str = ""  # the row's values and the bytes of its files: a changed row is rendered again
    worker: str = ""  # host:pid
    worker_rows: int = 0  # rows this worker had run, this one included (1 = it loaded the models)
    worker_rss_mb: float = 0.0  # the worker's peak resident memory after the row
    detail: str = ""  # the end of the traceback of an unexpected error, for a bug report
    finished_at: str = ""  # UTC, ISO 8601


@dataclass
class RowOutcome:
    """What a task returns: its result and its files (name in the row folder -> bytes)."""

    result: RowResult
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class BatchResult:
    """What a batch run produced; `rows` holds the latest result of every manifest row (None: not run yet)."""

    out_dir: Path
    results_jsonl: Path
    contact_sheet: Path | None
    index_html: Path
    rows: list[tuple[Row, RowResult | None]]
    ran: int  # rows run by this call
    skipped: int  # rows already done by an earlier call
    stopped: bool  # stopped on request before every row was run
    wall_s: float

    def count(self, status: str) -> int:
        return sum(1 for _, r in self.rows if r is not None and r.status == status)


# --------------------------------------------------------------------------------------------------------- manifest


def read_manifest(path: str | Path) -> list[Row]:
    """The rows of a manifest (.jsonl, .csv, or .json: an array of rows or a grid object).

    Raises:
        InputError: the file is missing or unreadable, a row is not an object, a column is unknown, a portrait
            column is missing, an id is malformed, or two rows are the same conversation.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"manifest: file not found: {path}", "manifest")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"manifest: {path} is not UTF-8 text; save it as UTF-8", "manifest") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        raw = list(_jsonl_rows(text, path.name))
    elif suffix == ".csv":
        raw = list(_csv_rows(text, path.name))
    elif suffix == ".json":
        raw = _json_rows(text, path.name)
    else:
        raise InputError(f"manifest: {path.name}: use a .jsonl, .csv or .json file", "manifest")
    if not raw:
        raise InputError(f"manifest: {path.name} has no rows", "manifest")
    if len(raw) > MAX_ROWS:
        raise InputError(f"manifest: {path.name} makes {len(raw)} rows; at most {MAX_ROWS}", "manifest")
    rows = [_row(number, where, values) for number, where, values in raw]
    seen: dict[str, Row] = {}
    for row in rows:
        if row.id in seen:
            first = seen[row.id]
            same = "are the same conversation" if "id" not in row.values else "have the same id"
            raise InputError(
                f"manifest: {first.where} and {row.where} {same} ({row.id}); give them different seeds or ids",
                "manifest",
            )
        seen[row.id] = row
    return rows


def _jsonl_rows(text: str, name: str) -> Iterator[tuple[int, str, dict]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"manifest: {where} is not valid JSON ({exc.msg})", "manifest") from None
        if not isinstance(values, dict):
            raise InputError(f"manifest: {where} must be a JSON object of columns", "manifest")
        yield number, where, values


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, str, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for values in reader:
        where = f"{name} line {reader.line_num}"
        if None in values:
            raise InputError(f"manifest: {where} has more cells than the header has columns", "manifest")
        # An empty cell means "the default", as a missing key does in JSON.
        yield reader.line_num, where, {k: v for k, v in values.items() if v is not None and v.strip() != ""}


def _json_rows(text: str, name: str) -> list[tuple[int, str, dict]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"manifest: {name} is not valid JSON ({exc.msg}, line {exc.lineno})", "manifest") from None
    if isinstance(data, list):
        rows = []
        for number, values in enumerate(data, 1):
            where = f"{name} row {number}"
            if not isinstance(values, dict):
                raise InputError(f"manifest: {where} must be a JSON object of columns", "manifest")
            rows.append((number, where, values))
        return rows
    if isinstance(data, dict):
        return [(n, f"{name} grid row {n}", values) for n, values in enumerate(expand_grid(data, name), 1)]
    raise InputError(f"manifest: {name} must hold an array of rows or a grid object", "manifest")


def expand_grid(spec: dict[str, Any], name: str = "grid") -> list[dict[str, Any]]:
    """Rows from a grid: every combination of the list values (in key order), scalars shared by every row.

    `"portraits": [p1, p2, p3]` stands for every pair of those photos (p1+p2, p1+p3, p2+p3; A is the earlier one).
    """
    if "id" in spec:
        raise InputError(f"manifest: {name}: a grid cannot name ids (each row's id is made from its values)", "id")
    axes: list[list[dict[str, Any]]] = []
    for key, value in spec.items():
        if key == GRID_PAIRS:
            if not isinstance(value, list) or len(value) < 2:
                raise InputError(f"manifest: {name}: '{GRID_PAIRS}' must list at least two photos", GRID_PAIRS)
            axes.append([{"portrait_a": a, "portrait_b": b} for a, b in itertools.combinations(value, 2)])
        elif isinstance(value, list):
            if not value:
                raise InputError(f"manifest: {name}: '{key}' is an empty list, so the grid has no rows", key)
            axes.append([{key: v} for v in value])
        else:
            axes.append([{key: value}])
    size = 1
    for axis in axes:
        size *= len(axis)
    if size > MAX_ROWS:
        raise InputError(f"manifest: {name}: the grid makes {size} rows; at most {MAX_ROWS}", "manifest")
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def _row(number: int, where: str, given: dict[str, Any]) -> Row:
    values: dict[str, Any] = {}
    for key, value in given.items():
        column = str(key).strip().replace("-", "_")
        if column not in COLUMNS:
            raise InputError(
                f"manifest: {where}: unknown column '{key}'; the columns are: {', '.join(COLUMNS)}", "manifest"
            )
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            raise InputError(f"manifest: {where}: column '{key}' must be a single value", "manifest")
        values[column] = value
    for column in ("portrait_a", "portrait_b"):
        if not str(values.get(column, "")).strip():
            raise InputError(f"manifest: {where}: column '{column}' is missing (a photo of a face)", "manifest")
    if "script" in values and "script_file" in values:
        raise InputError(f"manifest: {where}: give 'script' or 'script_file', not both", "manifest")
    for name in SETTINGS:
        if name in values:
            values[name] = _setting_value(name, values[name])
    row_id = str(values.pop("id", "")).strip()
    if row_id and not ID_PATTERN.fullmatch(row_id):
        raise InputError(
            f"manifest: {where}: id {row_id!r} must be 1-80 letters, digits, '.', '_' or '-' (it names a folder)",
            "manifest",
        )
    return Row(number=number, id=row_id or _content_id(values), values=values, where=where)


def _setting_value(name: str, value: Any) -> Any:
    """A setting in its field's type where the text says so plainly; anything else is left for the worker to refuse
    by name (e.g. size "big"), so one bad value fails its row, not the whole batch."""
    kind = type(setting_default(name))
    if isinstance(value, str):
        text = value.strip()
        if kind is bool and text.lower() in ("true", "yes", "1", "false", "no", "0"):
            return text.lower() in ("true", "yes", "1")
        if kind is int and re.fullmatch(r"[+-]?\d+(\.0*)?", text):
            return int(float(text))
        return text
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _content_id(values: dict[str, Any]) -> str:
    """A stable id from the row's values: the portraits' names (readable) and a hash of everything."""
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:10]
    stems = [re.sub(r"[^A-Za-z0-9]+", "_", Path(str(values[k])).stem).strip("_")[:20] for k in CALL_FIELDS[:2]]
    return "-".join([*(s for s in stems if s), digest])


# ------------------------------------------------------------------------------------------------------------- task


_WORKER = {"rows": 0}  # per process: rows this worker has run


def run_row(task: RowTask) -> RowOutcome:
    """Render one row; the task function of both the process pool and Ray. Never raises for a row's failure.

    Models load on a worker's first row and stay loaded (`warmchat.loading.load_once`) for its later rows.
    """
    from warmchat.pipeline import generate, output_paths

    _WORKER["rows"] += 1
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    _limit_threads(task.cpus)
    result = RowResult(id=task.row_id, row=task.number, status="failed", row_hash=task.row_hash)
    files: dict[str, bytes] = {}
    cfg = WarmChatConfig()
    secrets = (cfg.dialogue.api_key, cfg.speech.openai_api_key)
    made = None
    with tempfile.TemporaryDirectory(prefix="warmchat-row-") as tmp:
        portraits = {}
        for who, (name, data) in task.portraits.items():
            portraits[who] = Path(tmp, who, name)
            portraits[who].parent.mkdir()
            portraits[who].write_bytes(data)
        out = Path(tmp, "out", VIDEO_NAME)
        try:
            apply_settings(cfg, task.settings)
            made = generate(portraits["A"], portraits["B"], script=task.script, out=out, config=cfg, **task.call)
        except WarmChatError as exc:
            result.error = _scrub(str(exc), secrets)
            result.error_kind = "input" if isinstance(exc, InputError) else "error"
            result.error_field = getattr(exc, "field", None) or ""
            made = getattr(exc, "partial_result", None)
        except Exception as exc:  # a bug or a library failure: this row fails, the batch goes on
            log.exception("row %s failed", task.row_id)
            result.error = _scrub(f"{type(exc).__name__}: {exc}", secrets)
            result.error_kind = "error"
            result.detail = _scrub("".join(traceback.format_exc(limit=-4)), secrets)
            made = getattr(exc, "partial_result", None)
        if made is not None:
            result.status = "partial" if (made.partial or result.error) else "ok"
            result.note = made.note
            result.duration_s, result.n_frames = round(made.duration_s, 3), made.n_frames
            result.stage_seconds = {k: round(v, 3) for k, v in made.stage_seconds.items()}
            for key, path in output_paths(out).items():
                if path.is_file():
                    files[path.name] = path.read_bytes()
                    result.outputs[key] = f"{task.row_id}/{path.name}"
            poster = _poster(out, made.duration_s)
            if poster is not None:
                files[POSTER_NAME] = poster
                result.outputs["poster"] = f"{task.row_id}/{POSTER_NAME}"
    result.wall_s = round(time.perf_counter() - started, 3)
    result.cpu_s = round(_cpu_seconds() - cpu_started, 3)
    result.worker = f"{socket.gethostname()}:{os.getpid()}"
    result.worker_rows = _WORKER["rows"]
    result.worker_rss_mb = round(_peak_rss_mb(), 1)
    return RowOutcome(result, files)


def _limit_threads(cpus: int) -> None:
    """Keep a row to its share of the machine, so parallel rows do not fight over cores."""
    import torch

    if torch.get_num_threads() != cpus:
        torch.set_num_threads(cpus)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished child processes (ffmpeg)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    from warmchat.server_url import scrub

    return scrub(text, *secrets)


def _poster(video: Path, duration_s: float) -> bytes | None:
    """The frame in the middle of the video as a JPEG: the conversation's picture in the sheet and the index."""
    from warmchat.compose import ffmpeg_exe

    if not video.is_file():
        return None
    cmd = [
        ffmpeg_exe(), "-v", "error", "-ss", f"{duration_s / 2:.3f}", "-i", str(video), "-frames:v", "1",
        "-q:v", "3", "-f", "image2", "-c:v", "mjpeg", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        log.warning("no poster frame for %s: %s", video, proc.stderr.decode(errors="replace")[-300:])
        return None
    return proc.stdout


def _pool_worker_init(cpus: int, log_dir: str, level: int) -> None:
    """Runs first in each pool worker: Ctrl-C is the driver's to handle, and the worker's output goes to a log file
    (MediaPipe and the TTS engines print to the terminal from C++) so the progress line stays readable."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(cpus)  # read when torch and numpy's BLAS load, which is after this
    log_file = Path(log_dir, f"worker-{os.getpid()}.log")
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the worker
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


# ----------------------------------------------------------------------------------------------------------- driver


def batch(
    manifest: str | Path,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_task: int = 1,
    retry_failed: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    verbose: bool = False,
) -> BatchResult:
    """Render every row of a manifest into `out_dir`, skipping rows an earlier run finished.

    Args:
        manifest: a .jsonl, .csv or .json manifest (see the module docstring and the README's "Batch" section).
        out_dir: where the row folders, results.jsonl, contact_sheet.png and index.html go.
        workers: rows rendered at once (default: the CPU count // cpus_per_task); with a Ray cluster that is
            already running, the most rows in flight (default: two per free worker slot).
        ray_address: None: a local process pool. "local": start a Ray cluster on this machine for this run.
            Anything else (e.g. "auto", "10.0.0.5:6379", "ray://head:10001"): connect to that running cluster.
        cpus_per_task: cores each row may use; the Ray resource request (num_cpus) of each task.
        retry_failed: also run rows that failed on their inputs before (they fail the same way unless a file
            they read changed, which changes the row's hash and runs it anyway).
        progress: called with (fraction of rows finished, message with counts and ETA) as rows finish.
        should_stop: polled about once a second; when True, rows in flight are abandoned and finished rows kept.
        verbose: let the workers' logs through (Ray: to this terminal; the pool always writes out_dir/logs/).
    Returns:
        BatchResult; results.jsonl holds a line per row finished, written as each finishes.
    Raises:
        InputError: a malformed manifest (nothing is run). A row's own problem fails that row only.
        BackendUnavailable: `ray_address` is given but Ray is not installed.
    """
    started = time.perf_counter()
    manifest = Path(manifest)
    rows = read_manifest(manifest)
    if cpus_per_task < 1:
        raise InputError(f"cpus_per_task must be at least 1, got {cpus_per_task}", "cpus_per_task")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}", "workers")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir):
        results_path = out_dir / RESULTS_NAME
        done = _read_results(results_path)
        hasher = _RowHasher(manifest.parent)
        todo: list[tuple[Row, str]] = []
        skipped = 0
        for row in rows:
            row_hash = hasher.row_hash(row)
            if _already_done(done.get(row.id), row_hash, out_dir, retry_failed):
                skipped += 1
            else:
                todo.append((row, row_hash))
        progress = progress or (lambda f, m: log.info("%3.0f%% %s", f * 100, m))
        should_stop = should_stop or (lambda: False)
        tracker = _Tracker(len(todo), skipped, progress)
        stopped = False
        if todo:
            shutil.rmtree(out_dir / STAGING, ignore_errors=True)  # what an interrupted run was writing
            if ray_address is None:
                runner: _Runner = _PoolRunner(
                    workers or _default_workers(cpus_per_task), cpus_per_task, out_dir, verbose
                )
            else:
                runner = _RayRunner(ray_address, workers, cpus_per_task, verbose)
            tracker.start()
            try:
                stopped = _drive(runner, todo, manifest.parent, cpus_per_task, out_dir, done, tracker, should_stop)
            finally:
                runner.close()
                shutil.rmtree(out_dir / STAGING, ignore_errors=True)
        sheet, index = write_summary(out_dir, rows, done)
        return BatchResult(
            out_dir=out_dir, results_jsonl=results_path, contact_sheet=sheet, index_html=index,
            rows=[(row, done.get(row.id)) for row in rows], ran=tracker.finished, skipped=skipped, stopped=stopped,
            wall_s=time.perf_counter() - started,
        )  # fmt: skip


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One run per batch folder at a time: two would append to the same results and clear each other's staging."""
    import fcntl

    with open(out_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"out: another batch is running in {out_dir}; wait for it or use another folder",
                             "out") from None  # fmt: skip
        yield


def _default_workers(cpus_per_task: int) -> int:
    return max(1, (os.cpu_count() or 1) // cpus_per_task)


def _drive(
    runner: _Runner,
    todo: list[tuple[Row, str]],
    base: Path,
    cpus: int,
    out_dir: Path,
    done: dict[str, RowResult],
    tracker: _Tracker,
    should_stop: Callable[[], bool],
) -> bool:
    """Feed rows to the runner, at most `runner.slots` in flight, and record each as it finishes.

    Returns True when stopped on request before every row finished.
    """
    queue = list(reversed(todo))
    in_flight = 0
    while queue or in_flight:
        if should_stop():
            return True
        while queue and in_flight < runner.slots:
            row, row_hash = queue.pop()
            try:
                task = _make_task(row, row_hash, base, cpus)
            except InputError as exc:  # a portrait or script file the driver cannot read: this row only
                _record(out_dir, done, _failed(row, row_hash, str(exc), "input", exc.field or ""), {}, tracker)
                continue
            runner.submit(task)
            in_flight += 1
        for outcome in runner.finished(timeout=1.0):
            in_flight -= 1
            result = outcome.result
            if result.status == "failed" and result.error_kind != "input" and should_stop():
                continue  # most likely its ffmpeg caught the same Ctrl-C; not recorded, so the next run redoes it
            _record(out_dir, done, result, outcome.files, tracker)
        tracker.tick(in_flight)
    return False


def _record(
    out_dir: Path, done: dict[str, RowResult], result: RowResult, files: dict[str, bytes], tracker: _Tracker
) -> None:
    """Put a row's files in place (all at once), then append its line to results.jsonl."""
    result.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if files:
        _install(out_dir, result.id, files)
    with open(out_dir / RESULTS_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    done[result.id] = result
    tracker.row_finished(result)


def _install(out_dir: Path, row_id: str, files: dict[str, bytes]) -> None:
    """Write a row's files into a staging folder and rename it into place: a row folder is complete or absent."""
    staging = out_dir / STAGING / row_id
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, data in files.items():
        (staging / name).write_bytes(data)
    final = out_dir / row_id
    old = out_dir / STAGING / f"{row_id}.old"
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _failed(row: Row, row_hash: str, error: str, kind: str, error_field: str = "") -> RowResult:
    return RowResult(id=row.id, row=row.number, status="failed", error=error, error_kind=kind,
                     error_field=error_field, row_hash=row_hash)  # fmt: skip


def _read_results(path: Path) -> dict[str, RowResult]:
    """The latest result per row id; a line cut short by a crash is ignored."""
    latest: dict[str, RowResult] = {}
    if not path.is_file():
        return latest
    known = set(RowResult.__dataclass_fields__)
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
            result = RowResult(**{k: v for k, v in data.items() if k in known})
        except (json.JSONDecodeError, TypeError):
            continue
        latest[result.id] = result
    return latest


def _already_done(result: RowResult | None, row_hash: str, out_dir: Path, retry_failed: bool) -> bool:
    if result is None or result.row_hash != row_hash:
        return False
    if result.status == "ok":
        return bool(result.outputs) and all((out_dir / p).is_file() for p in result.outputs.values())
    # The same inputs fail the same way: only a change to the row (a new hash) or retry_failed runs it again.
    return result.status == "failed" and result.error_kind == "input" and not retry_failed


class _RowHasher:
    """Hashes of rows and of the files they read (each file read once, however many rows use it)."""

    def __init__(self, base: Path):
        self.base = base
        self.files: dict[Path, str] = {}

    def file_hash(self, path: Path) -> str:
        if path not in self.files:
            try:
                self.files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                self.files[path] = "unreadable"  # the row fails when its task is made, naming the file
        return self.files[path]

    def row_hash(self, row: Row) -> str:
        parts = [json.dumps(row.values, sort_keys=True, ensure_ascii=False)]
        for column in ("portrait_a", "portrait_b", "script_file"):
            if column in row.values:
                parts.append(self.file_hash(_resolve(self.base, row.values[column])))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else base / path


def _make_task(row: Row, row_hash: str, base: Path, cpus: int) -> RowTask:
    """A row's task with its files' bytes; raises InputError (naming the file) when one cannot be read."""
    values = row.values
    portraits = {}
    for who in ("A", "B"):
        path = _resolve(base, values[f"portrait_{who.lower()}"])
        if not path.is_file():
            raise InputError(f"Portrait {who}: file not found: {path}", f"portrait_{who.lower()}")
        try:
            portraits[who] = (path.name, path.read_bytes())
        except OSError as exc:
            raise InputError(
                f"Portrait {who}: cannot read {path} ({exc.strerror})", f"portrait_{who.lower()}"
            ) from None
    script = values.get("script")
    if "script_file" in values:
        from warmchat.cli import read_script

        script = read_script(_resolve(base, values["script_file"]))
    call: dict[str, Any] = {k: values[k] for k in ("emotion_a", "emotion_b", "topic") if k in values}
    call["names"] = {p: values[f"name_{p.lower()}"] for p in "AB" if f"name_{p.lower()}" in values}
    return RowTask(
        row_id=row.id, number=row.number, portraits=portraits, script=None if script is None else str(script),
        call=call, settings={k: values[k] for k in SETTINGS if k in values}, cpus=cpus, row_hash=row_hash,
    )  # fmt: skip


class _Tracker:
    """Counts rows as they finish and reports progress with an ETA from this run's pace."""

    def __init__(self, total: int, skipped: int, progress: Progress):
        self.total, self.skipped, self.progress = total, skipped, progress
        self.finished = self.failed = 0
        self.t0 = time.perf_counter()
        self.last_report = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self._report(0)

    def row_finished(self, result: RowResult) -> None:
        self.finished += 1
        self.failed += result.status == "failed"
        if result.status != "ok":
            log.warning("row %s %s: %s", result.id, result.status, result.error or result.note)

    def tick(self, in_flight: int) -> None:
        if time.perf_counter() - self.last_report >= 1.0 or self.finished == self.total:
            self._report(in_flight)

    def _report(self, in_flight: int) -> None:
        self.last_report = time.perf_counter()
        elapsed = self.last_report - self.t0
        left = self.total - self.finished
        eta = _clock(elapsed / self.finished * left) if self.finished else "--"
        skipped = f", {self.skipped} already done" if self.skipped else ""
        message = (
            f"{self.finished}/{self.total} rows done, {self.failed} failed, {in_flight} running{skipped}, "
            f"elapsed {_clock(elapsed)}, ETA {eta}"
        )
        self.progress(self.finished / max(self.total, 1), message)


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else (
        f"{seconds // 60}:{seconds % 60:02d}")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- runners


class _Runner:
    slots: int  # rows in flight at most

    def submit(self, task: RowTask) -> None:
        raise NotImplementedError

    def finished(self, timeout: float) -> list[RowOutcome]:
        """Outcomes of rows finished since the last call, waiting up to `timeout` seconds for the first."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop: rows still in flight are abandoned (their workers are ended)."""
        raise NotImplementedError


class _PoolRunner(_Runner):
    """Worker processes on this machine (spawned: no state copied from the driver); each keeps its models."""

    def __init__(self, workers: int, cpus: int, out_dir: Path, verbose: bool):
        self.slots = workers
        self.log_dir = out_dir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.init_args = (cpus, str(self.log_dir), logging.INFO if verbose else logging.WARNING)
        self.pool = self._new_pool()
        self.futures: dict[Future, RowTask] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(
            max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
            initializer=_pool_worker_init, initargs=self.init_args,
        )  # fmt: skip

    def submit(self, task: RowTask) -> None:
        self.futures[self.pool.submit(run_row, task)] = task

    def finished(self, timeout: float) -> list[RowOutcome]:
        ready, _ = wait_futures(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
        outcomes = []
        broken = False
        for future in ready:
            task = self.futures.pop(future)
            try:
                outcomes.append(future.result())
            except BrokenProcessPool:
                broken = True
                outcomes.append(_crashed(task, f"a worker process died while this row ran (see {self.log_dir})"))
        if broken:
            # Every row in flight fails with the pool; a fresh pool runs the rest (and these again, next run).
            for future, task in list(self.futures.items()):
                outcomes.append(_crashed(task, f"a worker process died while this row ran (see {self.log_dir})"))
                del self.futures[future]
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
        return outcomes

    def close(self) -> None:
        if not self.futures:
            self.pool.shutdown(wait=True)
            return
        # Abandon rows in flight: end the workers now rather than wait for their rows to finish. The executor has
        # no public way to do that before Python 3.14 (terminate_workers), hence its process table.
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)


def _crashed(task: RowTask, message: str) -> RowOutcome:
    result = RowResult(id=task.row_id, row=task.number, status="failed", error=message, error_kind="crash",
                       row_hash=task.row_hash)  # fmt: skip
    return RowOutcome(result)


class _RayRunner(_Runner):
    """The same task function as Ray tasks; results streamed back as they finish (`ray.wait`)."""

    OBJECT_STORE_MB = 256  # a local cluster's object store: tasks carry a few MB each; Ray's default is 30% of RAM

    def __init__(self, address: str, workers: int | None, cpus: int, verbose: bool):
        try:
            import ray
        except ImportError:
            raise BackendUnavailable("--ray needs Ray: pip install 'ray>=2.40' (see requirements.txt)") from None
        self.ray = ray
        self.temp_dir: str | None = None
        self.pending: dict[Any, RowTask] = {}
        self.started = not ray.is_initialized()
        if self.started:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage report to send
            # Quiet unless verbose: Ray's start-up warnings (e.g. that a local cluster uses token authentication)
            # would bury the progress line; a failure to start still raises.
            common = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
            if address == "local":
                n = workers or _default_workers(cpus)
                # A private, short temp dir (Ray's sockets live there; AF_UNIX paths max out at 107 bytes): never
                # the /tmp/ray of another cluster on this machine, and deleted with the cluster.
                self.temp_dir = tempfile.mkdtemp(prefix="wcray-", dir="/tmp" if os.path.isdir("/tmp") else None)
            try:
                if address == "local":
                    ray.init(
                        address="local", num_cpus=n * cpus, include_dashboard=False,
                        object_store_memory=self.OBJECT_STORE_MB * 1024**2, _temp_dir=self.temp_dir, **common,
                    )  # fmt: skip
                else:
                    ray.init(address=address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                self.close()
                where = "a Ray cluster on this machine" if address == "local" else f"the Ray cluster at {address}"
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BackendUnavailable(f"could not reach {where}: {detail}") from None
        if workers is None:
            workers = max(1, int(ray.available_resources().get("CPU", cpus) // cpus) * 2)
        self.slots = workers
        # max_retries: a task whose worker died (e.g. out of memory) gets one more try on another worker.
        self.remote = ray.remote(run_row).options(num_cpus=cpus, max_retries=1)

    def submit(self, task: RowTask) -> None:
        self.pending[self.remote.remote(task)] = task

    def finished(self, timeout: float) -> list[RowOutcome]:
        if not self.pending:
            return []
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        if ready:  # then collect whatever else is done too, without waiting
            ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        outcomes = []
        for ref in ready:
            task = self.pending.pop(ref)
            try:
                outcomes.append(self.ray.get(ref))
            except self.ray.exceptions.RayError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                outcomes.append(_crashed(task, f"the Ray task failed ({type(exc).__name__}): {first}"))
        return outcomes

    def close(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()
        if self.started:
            self.ray.shutdown()
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------- summary


def write_summary(out_dir: Path, rows: list[Row], done: dict[str, RowResult]) -> tuple[Path | None, Path]:
    """The contact sheet (one frame per conversation) and index.html (every video, playable) of a batch folder."""
    sheet = _write_contact_sheet(out_dir, rows, done)
    index = out_dir / INDEX_NAME
    _write_atomic(index, _index_html(out_dir, rows, done, sheet))
    return sheet, index


def _write_contact_sheet(out_dir: Path, rows: list[Row], done: dict[str, RowResult]) -> Path | None:
    import numpy as np
    from PIL import Image

    from warmchat.sheet import blank_tile, labelled_tile, save_sheet, tile_grid

    if not any(row.id in done for row in rows):
        return None
    tiles = []
    for row in rows:
        result = done.get(row.id)
        poster = out_dir / result.outputs["poster"] if result and "poster" in result.outputs else None
        state = "" if result and result.status == "ok" else f" [{result.status if result else 'not run yet'}]"
        label = f"{row.id}{state}\n{row.label()}"
        if poster is not None and poster.is_file():
            with Image.open(poster) as im:
                frame = np.asarray(im.convert("RGB"))
            # The faces only: a frame is two square faces side by side, then (with subtitles) the caption strip.
            tiles.append(labelled_tile(frame[: frame.shape[1] // 2], label, SHEET_TILE_W, SHEET_TILE_W // 2))
        else:
            tiles.append(blank_tile(label, SHEET_TILE_W, SHEET_TILE_W // 2))
    path = out_dir / SHEET_NAME
    tmp = path.with_suffix(".tmp.png")
    save_sheet(tile_grid(tiles, cols=4), tmp)
    os.replace(tmp, path)
    return path


def _index_html(out_dir: Path, rows: list[Row], done: dict[str, RowResult], sheet: Path | None) -> str:
    """A self-contained page: every conversation's video, what it is, and how it went. All text is escaped."""

    def link(rel: str) -> str:
        return html.escape(quote(rel), quote=True)

    counts = {s: sum(1 for r in rows if (x := done.get(r.id)) and x.status == s) for s in ("ok", "partial", "failed")}
    cards = []
    for row in rows:
        result = done.get(row.id)
        status = result.status if result else "not run yet"
        out = result.outputs if result else {}
        media = ""
        if "video" in out:
            poster = f' poster="{link(out["poster"])}"' if "poster" in out else ""
            media = f'<video controls preload="none"{poster} src="{link(out["video"])}"></video>'
        files = " · ".join(
            f'<a href="{link(out[k])}">{label}</a>'
            for k, label in (("video", "MP4"), ("srt", "SRT"), ("tree_json", "tree"), ("timeline_png", "timeline"))
            if k in out
        )
        topic = row.values.get("topic") or (
            "(script)" if "script" in row.values or "script_file" in row.values else ""
        )
        error = (result.error or result.note) if result else ""
        facts = (
            f"{result.duration_s:.1f} s · rendered in {result.wall_s:.1f} s" if result and result.duration_s else ""
        )
        cards.append(
            f'<div class="card {html.escape(status.replace(" ", "-"))}">{media}'
            f"<h2>{html.escape(row.id)}</h2>"
            f"<p>{html.escape(row.label())}</p>"
            + (f"<p><i>{html.escape(str(topic))}</i></p>" if topic else "")
            + f'<p class="status">{html.escape(status)}'
            + (f" · {html.escape(facts)}" if facts else "")
            + "</p>"
            + (f'<p class="error">{html.escape(error)}</p>' if error else "")
            + (f"<p>{files}</p>" if files else "")
            + "</div>"
        )
    sheet_link = f' · <a href="{link(sheet.name)}">contact sheet</a>' if sheet else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WarmChat batch: {html.escape(out_dir.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1em; }}
.card {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6em; }}
.card video {{ width: 100%; background: #000; }}
.card h2 {{ font-size: 1em; margin: .3em 0; word-break: break-all; }}
.card p {{ margin: .2em 0; font-size: .9em; }}
.failed {{ border-color: #d33; }} .partial {{ border-color: #d90; }}
.error {{ color: #b00; white-space: pre-wrap; }}
</style></head><body>
<h1>WarmChat batch: {html.escape(out_dir.name)}</h1>
<p>{len(rows)} conversations: {counts["ok"]} ok, {counts["partial"]} partial, {counts["failed"]} failed ·
<a href="{RESULTS_NAME}">results.jsonl</a>{sheet_link}</p>
<div class="grid">
{chr(10).join(cards)}
</div></body></html>
"""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
