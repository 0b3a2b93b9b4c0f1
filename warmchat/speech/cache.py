"""Synthesis cache: re-rendering a conversation reuses its speech instead of synthesising it again.

Entries live in memory (a bounded LRU per process) and on disk (one .npz per utterance in the cache directory),
keyed by a hash of everything that changes the sound: text, voice, emotion, intensity, backend, seed and the
engine settings (prosody table, model, package versions). The directory is bounded too (`SpeechConfig.cache_max_mb`):
every hit touches its file, and after each write the least recently used files are deleted until the directory is
under the cap. Several processes may share the directory; a file another one deleted is simply gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from warmchat.schema import Utterance

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/warmchat/speech, else ~/.cache/warmchat/speech."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "warmchat" / "speech"


def cache_key(**fields) -> str:
    """A stable hex key for JSON-serialisable `fields`."""
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


MEMORY_MB = 64  # audio kept in memory per process (a minute of 24 kHz speech is 5.8 MB)
STALE_TMP_S = 3600.0  # a half-written file this old belongs to a process that died: delete it


class SynthesisCache:
    """In-memory LRU in front of an optional on-disk store (`directory=None`: memory only).

    Args:
        directory: where entries are kept across processes, or None.
        max_items: entries kept in memory (also bounded to `memory_mb` of audio).
        max_mb: the directory's size cap in MB (10^6 bytes); least recently used entries are deleted beyond it.
        memory_mb: audio kept in memory, MB.
    """

    def __init__(
        self, directory: Path | None, max_items: int = 256, max_mb: float = 200, memory_mb: float = MEMORY_MB
    ):
        self.directory = directory
        self.max_items = max_items
        self.max_bytes = int(max_mb * 1e6)
        self.memory_bytes = int(memory_mb * 1e6)
        self._mem: OrderedDict[str, Utterance] = OrderedDict()
        self._mem_size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Utterance | None:
        with self._lock:
            utt = self._mem.get(key)
            if utt is not None:
                self._mem.move_to_end(key)
                self.hits += 1
        if utt is not None:
            self._touch(key)  # still in use: keep it on disk too
            return utt
        utt = self._load(key) if self.directory is not None else None
        with self._lock:
            if utt is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, utt)
        return utt

    def put(self, key: str, utt: Utterance) -> None:
        with self._lock:
            self._remember(key, utt)
        if self.directory is not None:
            self._save(key, utt)
            self.evict()

    def _remember(self, key: str, utt: Utterance) -> None:
        if key in self._mem:
            self._mem_size -= self._mem[key].audio.nbytes
        self._mem[key] = utt
        self._mem.move_to_end(key)
        self._mem_size += utt.audio.nbytes
        while self._mem and (len(self._mem) > self.max_items or self._mem_size > self.memory_bytes):
            self._mem_size -= self._mem.popitem(last=False)[1].audio.nbytes

    def _touch(self, key: str) -> None:
        """Mark an entry's file as just used (its modification time orders eviction)."""
        if self.directory is None:
            return
        with contextlib.suppress(OSError):  # deleted meanwhile (another process evicted it), or read-only
            os.utime(self._path(key))

    def disk_bytes(self) -> int:
        """Bytes of the entries now in the directory."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[int, int, Path]]:
        """(mtime ns, bytes, path) of each entry file; removes half-written files left by dead processes."""
        if self.directory is None:
            return []
        out = []
        now = time.time()
        for path in self.directory.glob("??/*"):
            try:
                st = path.stat()
                if path.suffix == ".npz":
                    out.append((st.st_mtime_ns, st.st_size, path))
                elif path.suffix == ".tmp" and now - st.st_mtime > STALE_TMP_S:
                    path.unlink()
            except OSError:  # deleted by another process between listing and stat
                continue
        return out

    def evict(self) -> None:
        """Delete least recently used entry files until the directory is within `max_bytes`."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:  # another process got there first: gone all the same
                pass
            except OSError as exc:
                log.warning("could not evict speech cache entry %s: %s", path, exc)
                continue
            total -= size

    def _load(self, key: str) -> Utterance | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                audio = data["audio"].astype(np.float32)
        except (OSError, ValueError, KeyError) as exc:  # a truncated or foreign file: synthesise again
            log.warning("ignoring unreadable speech cache entry %s: %s", path, exc)
            return None
        self._touch(key)
        return Utterance(
            audio=audio,
            sample_rate=int(meta["sample_rate"]),
            text=meta["text"],
            voice=meta["voice"],
            phonemes=[tuple(p) for p in meta["phonemes"]],
            words=[tuple(w) for w in meta["words"]],
        )

    def _save(self, key: str, utt: Utterance) -> None:
        path = self._path(key)
        meta = {
            "sample_rate": utt.sample_rate,
            "text": utt.text,
            "voice": utt.voice,
            "phonemes": [list(p) for p in utt.phonemes],
            "words": [list(w) for w in utt.words],
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash or a parallel render never leaves half a file under the real name.
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
                np.savez(f, audio=utt.audio, meta=np.array(json.dumps(meta, ensure_ascii=False)))
            os.replace(f.name, path)
        except OSError as exc:
            log.warning("could not write speech cache entry %s: %s", path, exc)
