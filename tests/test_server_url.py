"""Visitor-supplied server URLs: what is allowed, what is refused and why; key scrubbing. No network needed."""

from __future__ import annotations

import pytest

from warmchat.errors import InputError
from warmchat.server_url import MAX_DETAIL_CHARS, check_server_url, openai_client, scrub, server_detail


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("  HTTP://localhost:8080/v1/ ", "http://localhost:8080/v1"),  # loopback: a server of one's own
        ("http://192.168.1.20:11434/v1", "http://192.168.1.20:11434/v1"),  # the LAN stays allowed
        ("http://10.0.0.5/v1", "http://10.0.0.5/v1"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
        ("https://203.0.113.7/v1", "https://203.0.113.7/v1"),
    ],
)
def test_loopback_lan_and_public_addresses_are_allowed(url, expected):
    assert check_server_url(url) == expected


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://169.254.169.254/latest/meta-data", "link-local or cloud metadata"),
        ("http://169.254.10.1:8000/v1", "link-local or cloud metadata"),
        ("http://[fe80::1]/v1", "link-local or cloud metadata"),
        ("http://[fd00:ec2::254]/v1", "link-local or cloud metadata"),
        ("http://[::ffff:169.254.169.254]/v1", "link-local or cloud metadata"),
        ("http://100.100.100.200/v1", "link-local or cloud metadata"),
        ("http://0.0.0.0:8000/v1", "link-local or cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1", "cloud metadata service"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("gopher://127.0.0.1/", "must start with http:// or https://"),
        ("127.0.0.1:8000/v1", "must start with http:// or https://"),
        ("http:///v1", "has no host name"),
        ("", "must start with http"),
        ("http://user:pw@127.0.0.1/v1", "user name or password"),
        ("http://127.0.0.1:99999/v1", "not a valid URL"),
        ("http://no-such-host.invalid/v1", "could not be found (DNS)"),
    ],
)
def test_refused_urls_say_why(url, needle):
    with pytest.raises(InputError) as info:
        check_server_url(url, field="tts_url")
    assert needle in str(info.value)
    assert info.value.field == "tts_url"
    assert info.value.__cause__ is None


def test_a_host_name_resolving_to_a_metadata_address_is_refused(monkeypatch):
    import socket

    def fake(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(InputError, match=r"resolves to\) 169\.254\.169\.254"):
        check_server_url("http://innocent.example/v1")


def test_scrub_removes_keys_bearer_tokens_and_masked_fragments():
    key = "sk-test-0123456789abcdef"
    text = f"invalid key {key}; header Bearer {key}; you sent sk-t************cdef and k3y***xyz"
    clean = scrub(text, key)
    for secret in (key, "0123456789", "cdef", "***"):
        assert secret not in clean
    assert scrub("plain words stay", key) == "plain words stay"


def test_server_detail_is_scrubbed_and_short():
    key = "mysecretkey-not-sk-style"

    error = Exception("unused")
    error.body = {"message": f"bad key {key} " + "blah " * 200}
    detail = server_detail(error, key)
    assert key not in detail and len(detail) <= MAX_DETAIL_CHARS and detail.startswith("bad key [key] blah")


def test_the_client_takes_nothing_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-environment")
    with openai_client("", "", 5.0, 0) as client:
        assert client.api_key == "not-needed"
        assert str(client.base_url).rstrip("/") == "https://api.openai.com/v1"
        assert client.organization == "" and client.project == ""
    with openai_client("sk-given", "http://127.0.0.1:8000/v1", 5.0, 0) as client:
        assert client.api_key == "sk-given" and str(client.base_url).startswith("http://127.0.0.1:8000/v1")
