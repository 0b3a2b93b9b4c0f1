"""The app as people and scripts use it: a real server, driven by headless Chromium and by gradio_client."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TWO_LINES = "A [happy]: What a lovely day for a portrait!\nB [surprised]: Oh! I did not see you there."
SHOTS = ROOT / "out" / "screenshots"
# The operator's keys, set in the app's environment: they must never reach a server a visitor chose.
OPERATOR_KEYS = {"OPENAI_API_KEY": "sk-operator-llm-0123456789", "WARMCHAT_TTS_API_KEY": "sk-operator-tts-0123456789"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "WARMCHAT_CACHE_EXAMPLES": "off",
           "GRADIO_ANALYTICS_ENABLED": "False", **OPERATOR_KEYS}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"app exited: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("app did not start within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def _predict(client, script: str, seed: int, portrait_b: Path = EXAMPLES / "grace_hopper.jpg"):
    from gradio_client import handle_file

    return client.predict(handle_file(str(EXAMPLES / "astronaut.png")), "Eileen", "happy",
                          handle_file(str(portrait_b)), "Grace", "neutral", "a walk", 2, script, "hibari",
                          "piper-joe", 256, 25, seed, "auto", api_name="/generate")  # fmt: skip


def test_api_generates_files_and_four_parallel_requests_stay_distinct(server):
    from gradio_client import Client

    scripts = [f"A [happy]: Number {word} is my favourite.\nB: Mine is {word} too!" for word in
               ("one", "two", "three", "four")]  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: _predict(Client(server, verbose=False), s[1], s[0]), enumerate(scripts)))
    videos = set()
    for script_text, result in zip(scripts, results, strict=True):
        _live, video, plot_png, _plot, transcript, files, status = result[:7]
        word = script_text.split()[3]
        assert f"Number {word} is my favourite." in transcript
        assert Path(video).stat().st_size > 10_000 and Path(plot_png).is_file()
        assert {Path(f).suffix for f in files} == {".mp4", ".srt", ".json", ".png"}
        assert "Done: 2 turns" in status
        videos.add(Path(video).read_bytes())
    assert len(videos) == 4


def test_api_reports_no_face_clearly(server, tmp_path):
    from gradio_client import Client
    from PIL import Image
    from skimage import data

    cup = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(cup)
    with pytest.raises(Exception, match="Portrait B: no human face found"):
        _predict(Client(server, verbose=False), TWO_LINES, 0, portrait_b=cup)


@pytest.fixture(scope="module")
def browser():  # only for tests marked `browser` (run by `make test` after the default suite)
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); browser tests need it")
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield b
        b.close()


@pytest.mark.browser
def test_layout_at_desktop_and_phone_widths(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    boxes = {}
    for label, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(server)
        page.wait_for_selector("#portrait_a")
        page.screenshot(path=str(SHOTS / f"{label}.png"), full_page=True)
        boxes[label] = (page.locator("#portrait_a").bounding_box(), page.locator("#portrait_b").bounding_box())
        assert page.locator("#generate").is_visible()
        page.close()
    a, b = boxes["desktop"]
    assert b["x"] > a["x"] + a["width"] - 1 and abs(b["y"] - a["y"]) < 5  # side by side on a desktop
    a, b = boxes["phone"]
    assert b["y"] >= a["y"] + a["height"] - 1 and b["width"] <= 390  # stacked, nothing wider than the phone


@pytest.mark.browser
def test_click_example_generate_and_watch(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server)
    page.get_by_text("what makes a good portrait").first.click()  # the Mona Lisa / Pearl Earring example
    page.wait_for_function("document.querySelector('#preview_a img') !== null")
    page.get_by_text("Write your own script").click()
    page.locator("#script textarea").fill(TWO_LINES)
    page.locator("#generate").click()
    page.wait_for_function("document.querySelector('#transcript')?.innerText.includes('lovely day')", timeout=120_000)
    page.wait_for_function(
        "(() => { const v = document.querySelector('#video video'); return v && v.duration > 0; })()", timeout=180_000
    )
    duration = page.evaluate("document.querySelector('#video video').duration")
    assert 2 < duration < 30
    page.wait_for_selector("#plot canvas, #plot svg", timeout=30_000)
    page.screenshot(path=str(SHOTS / "result.png"), full_page=True)
    page.close()


@pytest.mark.browser
def test_no_face_upload_shows_error_next_to_portrait(server, browser, tmp_path):
    from PIL import Image
    from skimage import data

    cup = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(cup)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server)
    page.locator("#portrait_a input[type=file]").set_input_files(str(EXAMPLES / "astronaut.png"))
    page.locator("#portrait_b input[type=file]").set_input_files(str(cup))
    page.wait_for_function("document.querySelector('#preview_a img') !== null")
    # Our own intake reads the upload at once: the reason shows next to the portrait before anything is generated.
    page.wait_for_selector("#error_b:has-text('no human face found')", timeout=60_000)
    page.get_by_text("Write your own script").click()
    page.locator("#script textarea").fill(TWO_LINES)
    page.locator("#generate").click()
    page.wait_for_selector("#error_b:has-text('no human face found')", timeout=60_000)
    assert page.locator("#error_a").is_hidden()
    page.close()


def test_openai_compatible_llm_from_the_app_never_echoes_the_key(server):
    """The app's OpenAI-compatible settings reach a real server; the key authorises but is never sent back."""
    import secrets

    from gradio_client import Client, handle_file
    from openai_server import LINES, ChatServer

    key = "sk-app-" + secrets.token_hex(12)
    llm_server = ChatServer(api_key=key).start()
    try:
        result = Client(server, verbose=False).predict(
            handle_file(str(EXAMPLES / "astronaut.png")), "Eileen", "happy",
            handle_file(str(EXAMPLES / "grace_hopper.jpg")), "Grace", "neutral", "a road trip", 2, "", "hibari",
            "piper-joe", 256, 25, 0, "auto", "offline", "coral", "onyx", llm_server.base_url, key, "openai",
            "malformed-once", api_name="/generate",
        )  # fmt: skip
    finally:
        llm_server.stop()
    transcript, status = result[4], result[6]
    assert LINES[0] in transcript and "Done: 2 turns" in status
    assert len(llm_server.requests) >= 2  # the server wrote the lines (and was asked again after a malformed reply)
    assert key not in repr(result)
    for path in result[5]:  # MP4, SRT, tree JSON, PNG
        assert key.encode() not in Path(path).read_bytes()


def test_cancel_frees_the_workers(server):
    """Two long requests fill both workers; cancelling them lets a short request through at once."""
    from gradio_client import Client, handle_file

    long_script = "\n".join(  # the most lines the app allows a visitor
        f"{'AB'[i % 2]}: This is line number {i + 1} of a very long conversation." for i in range(12)
    )
    client = Client(server, verbose=False)
    args = [handle_file(str(EXAMPLES / "astronaut.png")), "Eileen", "happy",
            handle_file(str(EXAMPLES / "grace_hopper.jpg")), "Grace", "neutral", "a walk", 2]  # fmt: skip
    jobs = [client.submit(*args, long_script, "hibari", "piper-joe", 384, 25, 0, api_name="/generate") for _ in "12"]
    deadline = time.time() + 90
    while time.time() < deadline and not all(job.outputs() for job in jobs):  # both have started streaming
        time.sleep(0.2)
    assert all(job.outputs() for job in jobs)
    for job in jobs:
        job.cancel()
    start = time.time()
    result = client.predict(*args, TWO_LINES, "hibari", "piper-joe", 256, 25, 0, api_name="/generate")
    assert "Done: 2 turns" in result[6]
    assert time.time() - start < 45  # the 20-turn jobs alone would hold both workers for minutes


def _settings(script: str = "", **overrides) -> list:
    """The generate endpoint's inputs after the two people: script, voices, size, fps, seed, renderer, tts,
    OpenAI voices, server URL, key, dialogue backend, LLM model, voice pitch and rate per person."""
    values = {"script": script, "voice_a": "hibari", "voice_b": "piper-joe", "size": 256, "fps": 25, "seed": 0,
              "renderer": "auto", "tts": "offline", "openai_voice_a": "coral", "openai_voice_b": "onyx",
              "api_base_url": "", "api_key": "", "llm": "local", "llm_model": "m",
              "pitch_a": 0, "rate_a": 1, "pitch_b": 0, "rate_b": 1, **overrides}  # fmt: skip
    return list(values.values())


def _people(portrait_a: Path = EXAMPLES / "astronaut.png", portrait_b: Path = EXAMPLES / "grace_hopper.jpg"):
    from gradio_client import handle_file

    return [handle_file(str(portrait_a)), "Eileen", "happy", handle_file(str(portrait_b)), "Grace", "neutral",
            "a road trip", 2]  # fmt: skip


def test_visitor_server_never_receives_the_operator_keys(server):
    """A visitor URL with an empty key box: the LLM and TTS requests carry no key of the operator's."""
    from gradio_client import Client
    from openai_server import ChatServer

    recorder = ChatServer(api_key=None).start()  # takes any key, as local servers do, and records every header
    client = Client(server, verbose=False)
    try:
        client.predict(*_people(), *_settings(llm="openai", llm_model="malformed-once",
                                              api_base_url=recorder.base_url), api_name="/generate")  # fmt: skip
        try:  # the tone is not speech; whether it renders does not matter here, only what the server was sent
            client.predict(*_people(), *_settings("A: Hello there, friend.\nB: Hello to you too.", tts="openai",
                                                  api_base_url=recorder.base_url), api_name="/generate")  # fmt: skip
        except Exception as exc:
            assert "Traceback" not in str(exc)
    finally:
        recorder.stop()
    assert len(recorder.headers) >= 4  # two generated lines and two spoken ones
    for headers in recorder.headers:
        assert not any(key in str(headers) for key in OPERATOR_KEYS.values()), headers


def test_script_box_holding_a_server_path_is_text_not_a_file(server, tmp_path):
    from gradio_client import Client

    secret = tmp_path / "notes.txt"
    secret.write_text("A: the vault code is 8642\nB: do not tell anyone\n")
    with pytest.raises(Exception, match="script line 1") as info:
        Client(server, verbose=False).predict(*_people(), *_settings(str(secret)), api_name="/generate")
    assert "8642" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"script": "\n".join(f"{'AB'[i % 2]}: line {i}" for i in range(13))}, "limit is 12"),
        ({"script": "A: " + "word " * 61}, "60 words"),
        # A recorded line would read a server file: refused with the reason, before anything is read.
        ({"script": "A <audio: /etc/hostname>: Hi.\nB: Hello."}, "script line 1 refers to an audio file"),
        ({"script": "A <audio: ../../app.py>: Hi.\nB: Hello."}, "script line 1 refers to an audio file"),
        ({"size": 1024}, "1024"),  # the dropdown refuses it (its choices stop at the app limit)
        ({"fps": 120}, "120"),
        ({"api_base_url": "http://169.254.169.254/latest"}, "link-local"),
    ],
)
def test_app_limits_and_refusals_are_specific(server, overrides, expected):
    from gradio_client import Client

    script = overrides.pop("script", TWO_LINES)
    with pytest.raises(Exception, match=expected):
        Client(server, verbose=False).predict(*_people(), *_settings(script, **overrides), api_name="/generate")


@pytest.mark.parametrize(("content", "expected"), [(b"", "empty"), (b"hello, not an image", "not an image")])
def test_upload_that_is_not_an_image_gets_our_message(server, tmp_path, content, expected):
    from gradio_client import Client

    bad = tmp_path / "photo.png"
    bad.write_bytes(content)
    with pytest.raises(Exception, match=f"Portrait A.*{expected}"):
        Client(server, verbose=False).predict(*_people(portrait_a=bad), *_settings(TWO_LINES), api_name="/generate")


def test_stop_returns_the_finished_turns_with_downloads(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    four = "\n".join(f"{'AB'[i % 2]}: This is line number {i + 1} of our talk today." for i in range(4))
    job = client.submit(*_people(), *_settings(four, size=384), api_name="/generate")
    deadline = time.time() + 120
    while time.time() < deadline and not any("Turn 1 ready" in str(o) for o in job.outputs()):
        time.sleep(0.2)
    client.predict(api_name="/stop")
    _live, video, _png, _plot, transcript, files, status = job.result(timeout=120)[:7]
    assert "Partial result" in status and "stopped on request" in status
    assert Path(video).stat().st_size > 10_000 and len(files) == 4
    assert "line number 1" in transcript and "line number 4" not in transcript
