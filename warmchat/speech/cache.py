"""Synthesis cache: re-rendering a conversation reuses its speech instead of synthesising it again.

Entries live in memory (a bounded LRU per process) and on disk (one .npz per utterance in the cache directory),
keyed by a hash of everything that changes the sound: text, voice, emotion, intensity, backend, seed and the
engine settings (prosody table, model, package versions).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
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


class SynthesisCache:
    """In-memory LRU in front of an optional on-disk store (`directory=None`: memory only)."""

    def __init__(self, directory: Path | None, max_items: int = 256):
        self.directory = directory
        self.max_items = max_items
        self._mem: OrderedDict[str, Utterance] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Utterance | None:
        with self._lock:
            if key in self._mem:
                self._mem.move_to_end(key)
                self.hits += 1
                return self._mem[key]
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

    def _remember(self, key: str, utt: Utterance) -> None:
        self._mem[key] = utt
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_items:
            self._mem.popitem(last=False)

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
