"""OpenAI-compatible servers a visitor may choose: check the URL, make a client that reads nothing from the
environment, and keep API keys out of every error text.

The dialogue backend (`warmchat.dialogue.openai_chat`) and the TTS backend (`warmchat.speech.openai_tts`) both go
through here, so the two follow one set of rules.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit, urlunsplit

from warmchat.errors import InputError

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
NO_KEY = "not-needed"  # sent when no key is configured: local servers accept any key, and the client wants one
MAX_DETAIL_CHARS = 200  # a server's own error text is shown at most this long

# Cloud instance-metadata endpoints: they hand out the host's credentials to whoever asks from inside it.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2", "0.0.0.0", "::")
)
_LINK_LOCAL_NETS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


def check_server_url(url: str, field: str = "api_base_url") -> str:
    """A visitor-supplied OpenAI-compatible base URL, normalised (no trailing slash), or an InputError saying why not.

    Allowed: http and https URLs with a host name or address. Refused: other schemes, user names or passwords in
    the URL, and hosts that are, or resolve to, a link-local address (169.254.0.0/16, fe80::/10), a cloud metadata
    endpoint (169.254.169.254, fd00:ec2::254, 100.100.100.200, metadata.google.internal) or the unspecified
    address (0.0.0.0, ::). Every address the host name resolves to is checked.

    Loopback (127.0.0.1, localhost) and private LAN addresses (10/8, 172.16/12, 192.168/16) stay allowed on purpose:
    people run their own LLM and TTS servers there, and on a machine of one's own that is the common case. A public
    deployment that must not reach its own network hides the URL setting instead
    (`warmchat.config.allow_custom_server_url`).

    Args:
        url: e.g. "http://127.0.0.1:8000/v1" or "https://api.openai.com/v1".
        field: the input the URL came from, for the error.
    Returns:
        The URL without surrounding spaces and trailing slashes.
    Raises:
        InputError: naming the problem and the fix.
    """
    url = (url or "").strip().rstrip("/")
    shown = url[:80]
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise InputError(f"the server URL {shown!r} is not a valid URL", field) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InputError(
            f"the server URL {shown!r} must start with http:// or https://, e.g. http://127.0.0.1:8000/v1", field
        )
    if not host:
        raise InputError(f"the server URL {shown!r} has no host name, e.g. http://127.0.0.1:8000/v1", field)
    if parts.username or parts.password:
        raise InputError("the server URL must not contain a user name or password; give the API key instead", field)
    host = host.lower().rstrip(".")
    if host in METADATA_HOSTS:
        raise InputError(f"the server URL points at a cloud metadata service ({host}); that is not allowed", field)
    for address in _resolve(host, parts.port, field):
        if _forbidden(address):
            raise InputError(
                f"the server URL's host {host} is (or resolves to) {address}, a link-local or cloud metadata address; "
                "use the address of an OpenAI-compatible server instead",
                field,
            )
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), parts.query, ""))


def _resolve(host: str, port: int | None, field: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise InputError(
            f"the server URL's host {host[:80]!r} could not be found (DNS); check the spelling, or use its IP address",
            field,
        ) from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return address in METADATA_ADDRESSES or any(address in net for net in _LINK_LOCAL_NETS)


def openai_client(api_key: str, base_url: str, timeout_s: float, max_retries: int):
    """An `openai.OpenAI` client that takes nothing from the environment.

    The library would otherwise fill an empty key from OPENAI_API_KEY, an empty URL from OPENAI_BASE_URL and add
    organisation, project and custom headers from OPENAI_ORG_ID, OPENAI_PROJECT_ID and OPENAI_CUSTOM_HEADERS, so
    an operator's credentials could reach a server a visitor chose. Redirects are not followed, so a server cannot
    bounce the request to another host. Create one per request and close it (it is a context manager).

    Args:
        api_key: the configured key; "" sends the placeholder `NO_KEY`.
        base_url: the server; "" means api.openai.com.
    """
    import openai

    key = api_key or NO_KEY
    headers = {
        "Authorization": f"Bearer {key}",  # an explicit header also drops one from OPENAI_CUSTOM_HEADERS
        "OpenAI-Organization": openai.Omit(),
        "OpenAI-Project": openai.Omit(),
    }
    return openai.OpenAI(
        api_key=key,
        base_url=base_url or OPENAI_DEFAULT_URL,
        organization="",
        project="",
        timeout=timeout_s,
        max_retries=max_retries,
        default_headers=headers,
        http_client=openai.DefaultHttpxClient(follow_redirects=False, timeout=timeout_s),
    )


_MASKED = re.compile(r"\b(?:sk|key|pk|rk)-[A-Za-z0-9_*\-]{3,}|[A-Za-z0-9_\-]*\*{3,}[A-Za-z0-9_\-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")


def scrub(text: str, *secrets: str) -> str:
    """`text` without the secrets, `Bearer` tokens, or masked fragments of keys (servers echo keys as 'sk-ab***yz')."""
    for secret in secrets:
        if secret and secret != NO_KEY:
            text = text.replace(secret, "[key]")
    return _MASKED.sub("[key]", _BEARER.sub("Bearer [key]", text))


def server_detail(exc: BaseException, *secrets: str) -> str:
    """A server's error text for a user: the message only, scrubbed of keys, on one line, shortened."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        message = getattr(exc, "message", None) or str(exc)
    text = " ".join(scrub(str(message), *secrets).split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"
