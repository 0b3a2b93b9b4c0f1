"""The OpenAI-compatible TTS client against a real local server: no key from the environment, no key in errors,
no process-wide client holding visitors' keys."""

from __future__ import annotations

import secrets
import traceback

import numpy as np
import pytest
from openai_server import ChatServer

from warmchat import speech
from warmchat.config import SpeechConfig
from warmchat.errors import BackendUnavailable, InputError
from warmchat.speech import openai_tts

KEY = "sk-test-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def open_server():
    """Takes any key, as local TTS servers do, and records the headers it got."""
    srv = ChatServer(api_key=None).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keyed_server():
    srv = ChatServer(api_key=KEY).start()
    yield srv
    srv.stop()


def _cfg(server: ChatServer, key: str, **kw) -> SpeechConfig:
    return SpeechConfig(backend="openai", openai_api_key=key, openai_base_url=server.base_url, cache=False, **kw)


def test_an_empty_key_never_sends_the_environment_key(open_server, monkeypatch):
    env_key = "sk-environment-" + secrets.token_hex(8)
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    monkeypatch.setenv("WARMCHAT_TTS_API_KEY", env_key)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-environment")
    first = len(open_server.headers)
    audio, sr = openai_tts.speak("Hello there.", "coral", "happy", 0.6, _cfg(open_server, ""))
    assert sr == 24000 and audio.dtype == np.float32 and abs(len(audio) / sr - 0.5) < 0.01
    (headers,) = open_server.headers[first:]
    assert headers["authorization"] == "Bearer not-needed"
    assert env_key not in str(headers) and "openai-organization" not in headers
    speech.check_voices(_cfg(open_server, ""))  # a server of one's own needs no key


def test_an_empty_base_url_means_api_openai_com_not_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("WARMCHAT_TTS_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-environment")
    with openai_tts.make_client(SpeechConfig(backend="openai", openai_api_key="", openai_base_url="")) as client:
        assert str(client.base_url).rstrip("/") == "https://api.openai.com/v1"
        assert client.api_key == "not-needed"
    with pytest.raises(BackendUnavailable, match="needs an API key"):  # api.openai.com without a key
        openai_tts.speak("Hi.", "coral", "neutral", 0.5, SpeechConfig(openai_api_key="", openai_base_url=""))


def test_a_server_echoing_the_key_is_scrubbed_everywhere(keyed_server):
    with pytest.raises(BackendUnavailable) as info:
        openai_tts.speak("Hello there.", "echo-key", "neutral", 0.5, _cfg(keyed_server, KEY))
    message = str(info.value)
    assert "answered HTTP 400" in message and "invalid key [key]" in message and len(message) < 400
    assert info.value.__cause__ is None and info.value.__context__ is None
    everything = "".join(traceback.format_exception(info.value))
    assert KEY not in everything and KEY[8:20] not in everything


def test_a_rejected_key_is_explained_without_echoing_it(keyed_server):
    wrong = "sk-wrong-" + secrets.token_hex(16)
    with pytest.raises(BackendUnavailable, match="rejected the API key") as info:
        openai_tts.speak("Hello there.", "coral", "neutral", 0.5, _cfg(keyed_server, wrong))
    assert wrong not in "".join(traceback.format_exception(info.value)) and info.value.__context__ is None


def test_each_request_gets_its_own_client(open_server):
    assert not hasattr(openai_tts, "_client")  # no process-wide cache keyed by visitors' keys
    cfg = _cfg(open_server, KEY)
    with openai_tts.make_client(cfg) as one, openai_tts.make_client(cfg) as two:
        assert one is not two


def test_a_metadata_server_url_is_refused_before_any_request():
    cfg = SpeechConfig(backend="openai", openai_api_key=KEY, openai_base_url="http://169.254.169.254/v1")
    with pytest.raises(InputError, match="link-local or cloud metadata"):
        speech.check_voices(cfg)
    with pytest.raises(InputError, match="link-local or cloud metadata"):
        openai_tts.speak("Hello.", "coral", "neutral", 0.5, cfg)
