"""The server mode's two settings as a person types them (Kivy-free): the server URL, checked before it is
used or stored, and the API key, which the screen shows only masked.

An empty URL means the model on this device decides. A plain ``http://`` URL to
a host other than this machine is allowed but earns a warning: the key and the
frames would travel in clear (TLS: docs/server/deployment.md).
"""

from __future__ import annotations

import ipaddress
import urllib.parse

SCHEMES = ("http", "https")
SHOWN_KEY_CHARS = 4  # the key's last characters the screen may show
KEY_MASK = "*" * 8  # the same mask for every key: its length is not shown either
LOOPBACK_NAMES = ("localhost",)


def normalise_url(text: str | None) -> str | None:
    """``text`` without surrounding blanks and a final ``/``; None when nothing is left (the device decides)."""
    url = (text or "").strip().rstrip("/")
    return url or None


def url_problem(url: str) -> str:
    """What is wrong with the server URL ``url`` ('' when nothing is): not http(s), no host, a bad port, a
    user name or password, a query or fragment."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        return f"server URL must start with http:// or https://, got {url!r}"
    if not parts.hostname:
        return f"server URL has no host: {url!r} (e.g. https://auth.example.org)"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        return f"server URL has a bad port: {url!r}"
    if parts.username is not None or parts.password is not None:
        return "server URL must not hold a user name or password: put the key in the API key field"
    if parts.query or parts.fragment:
        return f"server URL must not have a query or fragment: {url!r}"
    return ""


def is_loopback(host: str) -> bool:
    """Is ``host`` this machine (``localhost``, 127.0.0.0/8, ``::1``)?"""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clear_text_warning(url: str | None) -> str:
    """A warning when ``url`` (already checked) sends the key in clear to another machine; '' otherwise."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http" or is_loopback(parts.hostname or ""):
        return ""
    return (f"Warning: http:// to {parts.hostname} sends the API key and your face in clear over the network; "
            "use https:// (see docs/server/deployment.md, TLS)")


def mask_key(key: str) -> str:
    """``key`` as the screen may show it: a fixed mask and its last 4 characters (a short key: the mask only);
    '' for no key."""
    if not key:
        return ""
    if len(key) <= 2 * SHOWN_KEY_CHARS:  # showing 4 characters of a short key would show most of it
        return KEY_MASK
    return KEY_MASK + key[-SHOWN_KEY_CHARS:]
