"""`load_once`: one load per argument set however many threads ask, and no waiting for what is already loaded."""

from __future__ import annotations

import threading
import time

import pytest

from warmchat.loading import LOAD_LOCK, load_once


def test_concurrent_callers_share_one_load():
    calls = []

    @load_once
    def load(name: str, device: str = "cpu"):
        calls.append((name, device))
        time.sleep(0.05)  # long enough for the other threads to arrive while it loads
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(load("m"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [("m", "cpu")] and all(r is results[0] for r in results)
    cuda = load("m", device="cuda")
    assert cuda is not results[0] and load("m", device="cuda") is cuda and len(calls) == 2
    load.cache_clear()
    assert load("m") is not results[0] and len(calls) == 3


def test_what_is_loaded_is_returned_while_another_load_holds_the_lock():
    @load_once
    def small():
        return 42

    assert small() == 42
    got = []
    with LOAD_LOCK:  # held, as by a long load in another thread
        t = threading.Thread(target=lambda: got.append(small()))
        t.start()
        t.join(timeout=5)
    assert got == [42]


def test_a_failed_load_is_tried_again():
    attempts = []

    @load_once
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("not there yet")
        return "model"

    with pytest.raises(OSError):
        flaky()
    assert flaky() == "model" and flaky() == "model" and len(attempts) == 2
