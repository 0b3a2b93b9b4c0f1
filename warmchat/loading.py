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
    is not safe to run in parallel threads (its empty-weights init is process-global).
    """
    cached = functools.cache(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with LOAD_LOCK:
            return cached(*args, **kwargs)

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper
