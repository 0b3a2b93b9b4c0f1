"""Compose: two faces side by side with a caption strip, streamed into an H.264 + AAC MP4; and the SRT."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import textwrap
import wave
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from warmchat.loading import load_once
from warmchat.schema import MotionTrack, Segment, Timeline, Turn

log = logging.getLogger(__name__)

CAPTION_H = 96  # pixels of caption strip under the faces


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped by imageio-ffmpeg (has libx264 and AAC), or the system one."""
    import shutil

    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        exe = shutil.which("ffmpeg")
        if not exe:
            raise RuntimeError("ffmpeg not found: `pip install imageio-ffmpeg` or install ffmpeg") from None
        return exe


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


# x264 settings, chosen by measurement (README, Speed): on a lossless capture of a conversation at CRF 20, superfast
# with macroblock-tree rate control (which superfast turns off) costs 31 % less encoder CPU than veryfast (4.0 vs
# 5.7 ms per 1024x608 frame) for the same picture (PSNR 43.65 vs 43.74 dB, SSIM 0.985 vs 0.986) and 18 % more bytes.
X264_PRESET = "superfast"
X264_PARAMS = "mbtree=1:rc-lookahead=10"


class VideoWriter:
    """Streams RGB frames into ffmpeg as they are made (memory does not grow with length), muxed with a WAV track.

    A ``.ts`` path writes MPEG-TS (a segment that plays on its and concatenates without re-encoding), anything
    else MP4 with the index at the front so browsers start playing at once.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: int,
        audio_wav: Path,
        crf: int = 20,
        preset: str = X264_PRESET,
        x264_params: str = X264_PARAMS,
    ):
        self.path = Path(path)
        container = ["-f", "mpegts"] if self.path.suffix == ".ts" else ["-movflags", "+faststart"]
        # Frames go to ffmpeg as YUV 4:2:0, converted here by OpenCV (0.4 ms for 1024x608): half the bytes through
        # the pipe, and ffmpeg's own single-threaded RGB conversion (1.7 ms a frame) is saved. Same BT.601 limited
        # range as ffmpeg's (luma within 1 level). Odd sizes cannot be 4:2:0 and go as RGB.
        self._to_yuv = None
        if width % 2 == 0 and height % 2 == 0:
            import cv2

            buffer = np.empty((height * 3 // 2, width), np.uint8)
            self._to_yuv = partial(cv2.cvtColor, code=cv2.COLOR_RGB2YUV_I420, dst=buffer)
        cmd = [
            ffmpeg_exe(), *"-y -loglevel error -f rawvideo -pix_fmt".split(), "yuv420p" if self._to_yuv else "rgb24",
            *["-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-i", str(audio_wav)],
            *f"-c:v libx264 -preset {preset} -bf 0 -crf {crf} -pix_fmt yuv420p -c:a aac -b:a 128k".split(),
            *(["-x264-params", x264_params] if x264_params else []),
            *container, str(self.path),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """One (H, W, 3) uint8 RGB frame."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if self._to_yuv:
            frame = self._to_yuv(frame)
        self._proc.stdin.write(memoryview(frame).cast("B"))
        self.frames += 1

    def close(self) -> None:
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace")
        if self._proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path.name}: {err.strip()[-500:]}")

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Stopped(Exception):
    """Raised inside a segment's writer to abort it when the caller asks to stop."""


@dataclass
class SegmentWriter:
    """Renders frame ranges of both faces, side by side with captions, into playable MPEG-TS segments.

    With `workers` = 2, faces A and B render at the same time in two threads (the CPU warp's kernels release the
    GIL), and batch k+1 renders while batch k is handed to ffmpeg, so neither core waits for the other. Each
    renderer still draws its frames one call at a time and in order, so the frames are exactly those of a
    sequential render.
    """

    renderers: dict  # "A"/"B" -> a renderer (`render_batch(expression, pose) -> (N, S, S, 3) uint8`)
    captioner: Captioner | None
    size: int
    crf: int
    batch_frames: int = 48  # frames per render call: the diffusion renderer makes one GPU call per batch
    workers: int = 0  # render threads: 0 renders in the caller's thread (e.g. a GPU renderer), 2 = A and B at once
    preset: str = X264_PRESET  # x264 preset and options (see README, Speed)
    x264_params: str = X264_PARAMS

    def __post_init__(self) -> None:
        self._pool = None

    def write(
        self,
        path: Path,
        tracks: dict[str, MotionTrack],
        clock: Timeline,
        start: int,
        end: int,
        progress: Callable[[float], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Frames [start, end) with the matching slice of the conversation audio.

        Returns:
            True when the segment was written; False when `should_stop()` turned true between batches, in which
            case no file is left behind.
        """
        height = self.size + (CAPTION_H if self.captioner else 0)
        samples_per_frame = clock.sample_rate / clock.fps
        audio = clock.audio[round(start * samples_per_frame) : round(end * samples_per_frame)]
        step = max(1, self.batch_frames)
        batches = [slice(k0, min(k0 + step, end - start)) for k0 in range(0, end - start, step)]
        frame = np.empty((height, 2 * self.size, 3), np.uint8)  # one frame assembled in place, written as is
        pending = None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "segment.wav"
                write_wav(wav, audio, clock.sample_rate)
                with VideoWriter(
                    path, 2 * self.size, height, clock.fps, wav, self.crf, self.preset, self.x264_params
                ) as writer:
                    for b, rows in enumerate(batches):
                        if should_stop():
                            raise _Stopped
                        faces = self._collect(pending) if pending else self._render(tracks, rows)
                        # Start the next batch before encoding this one: rendering and ffmpeg overlap.
                        pending = (
                            self._submit(tracks, batches[b + 1]) if self.workers and b + 1 < len(batches) else None
                        )
                        for i, k in enumerate(range(rows.start, rows.stop)):
                            said = _speaking_turn(clock.segments, (start + k) / clock.fps)
                            caption = self.captioner.strip(said) if self.captioner else None
                            writer.write(compose_frame(faces["A"][i], faces["B"][i], caption, out=frame))
                        progress(rows.stop / max(end - start, 1))
        except _Stopped:
            Path(path).unlink(missing_ok=True)
            return False
        finally:
            if pending:  # never leave a renderer busy behind the next call (its own error, if any, is moot)
                from concurrent.futures import wait

                wait(pending.values())
        return True

    def close(self) -> None:
        """Stop the render threads (the writer cannot be used afterwards)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _render(self, tracks: dict[str, MotionTrack], rows: slice) -> dict[str, np.ndarray]:
        if self.workers:
            return self._collect(self._submit(tracks, rows))
        return {p: self.renderers[p].render_batch(tracks[p].expression[rows], tracks[p].pose[rows]) for p in "AB"}

    def _submit(self, tracks: dict[str, MotionTrack], rows: slice) -> dict:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="warmchat-render")
        return {
            p: self._pool.submit(self.renderers[p].render_batch, tracks[p].expression[rows], tracks[p].pose[rows])
            for p in "AB"
        }

    @staticmethod
    def _collect(futures: dict) -> dict[str, np.ndarray]:
        return {p: f.result() for p, f in futures.items()}


def _speaking_turn(segments: list[Segment], t: float) -> int | None:
    """`Timeline.segment_at(t).turn_index` for the newest frames in O(1): segments are searched from the end."""
    for seg in reversed(segments):
        if t >= seg.end:
            return None  # later segments start after t, earlier ones end before this one starts
        if t >= seg.start:
            return seg.turn_index
    return None


def join_segments(segments: list[Path], audio_wav: Path, out: Path, fps: int) -> Path:
    """One MP4 from per-turn MPEG-TS segments: video copied as is, the whole conversation's audio encoded once.

    Encoding the audio once (rather than copying each segment's) avoids AAC priming gaps at every turn boundary;
    video timestamps are rewritten to frame_number / fps (the segments have no B-frames) so the AAC delay each
    segment carries does not open a gap at every join.
    """
    listing = out.with_suffix(".segments.txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in segments))
    cmd = [
        ffmpeg_exe(), *"-y -loglevel error -f concat -safe 0 -i".split(), str(listing), "-i", str(audio_wav),
        *"-map 0:v -map 1:a -c:v copy -bsf:v".split(), f"setts=ts=N/({fps}*TB)",
        *"-c:a aac -b:a 128k -movflags +faststart".split(), str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    listing.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed joining {len(segments)} segments into {out.name}: {proc.stderr[-500:]}")
    return out


@load_once
def _font(size: int):
    """DejaVu Sans from matplotlib's package data: always present, no system fonts needed."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


class Captioner:
    """Draws the current line and speaker under the faces; caches the strip per line."""

    def __init__(self, width: int, turns: list[Turn], names: dict[str, str]):
        self.width, self.turns, self.names = width, turns, names
        self._cache: dict[int | None, np.ndarray] = {}

    def strip(self, turn_index: int | None) -> np.ndarray:
        if turn_index not in self._cache:
            self._cache[turn_index] = self._draw(turn_index)
        return self._cache[turn_index]

    def _draw(self, turn_index: int | None) -> np.ndarray:
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (self.width, CAPTION_H), (18, 18, 22))
        if turn_index is not None:
            turn = self.turns[turn_index]
            draw = ImageDraw.Draw(img)
            head = f"{self.names[turn.speaker]} ({turn.emotion})"
            x = 16 if turn.speaker == "A" else self.width // 2 + 16
            draw.text((x, 8), head, font=_font(20), fill=(250, 200, 90))
            lines = textwrap.wrap(turn.text, width=max(20, self.width // 12))[:2]
            for j, line in enumerate(lines):
                draw.text((16, 36 + 26 * j), line, font=_font(22), fill=(240, 240, 240))
        return np.asarray(img)


def compose_frame(
    face_a: np.ndarray, face_b: np.ndarray, caption: np.ndarray | None, out: np.ndarray | None = None
) -> np.ndarray:
    """(H [+ caption], 2W, 3) frame: A on the left, B on the right, the caption strip below.

    Args:
        out: a frame of that shape to fill instead of allocating one (frames are written out one at a time).
    """
    s, w = face_a.shape[0], face_a.shape[1]
    height = s + (0 if caption is None else caption.shape[0])
    frame = np.empty((height, 2 * w, 3), np.uint8) if out is None else out
    frame[:s, :w] = face_a
    frame[:s, w:] = face_b
    if caption is not None:
        frame[s:] = caption
    return frame


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def write_srt(path: Path, timeline: Timeline, turns: list[Turn], names: dict[str, str]) -> None:
    """One cue per turn, timed to its speech."""
    cues = []
    for k, seg in enumerate(timeline.segments, start=1):
        turn = turns[seg.turn_index]
        cues.append(f"{k}\n{_srt_time(seg.start)} --> {_srt_time(seg.end)}\n{names[turn.speaker]}: {turn.text}\n")
    Path(path).write_text("\n".join(cues), encoding="utf-8")
