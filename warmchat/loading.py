"""Model loading: lazily, once per process, and never two loads at the same time."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
LOAD_LOCK = threading.RLock()  # re-entrant: a loader may call another loader


def load_once(fn: Callable[..., T]) -> Callable[..., T]:
    """Like `functools.cache`, but concurrent callers wait for the first load instead of racing it.

    Two app requests arriving together would otherwise both load the model, and transformers' `from_pretrained`
    is not safe to run in parallel threads (its empty-weights init is process-global). What is already loaded is
    returned without taking the lock, so a request never waits on another one's (possibly long) load of something
    else. A load that raises is not cached: the next call tries again. `wrapper.cache_clear()` forgets everything.
    """
    loaded: dict = {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return loaded[key]  # a dict read is atomic: no lock needed for what is already there
        except KeyError:
            pass
        with LOAD_LOCK:
            if key not in loaded:  # another thread may have loaded it while this one waited
                loaded[key] = fn(*args, **kwargs)
            return loaded[key]

    wrapper.cache_clear = loaded.clear  # type: ignore[attr-defined]
    return wrapper
