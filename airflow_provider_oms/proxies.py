"""
Which proxy a request goes through: decided once, here, and passed explicitly to every HTTP client.

The sync hook (requests), the trigger (httpx) and the IAM login all ask :func:`proxy_for` and hand its answer to
their client with the environment ignored (``trust_env=False``): requests, httpx and aiohttp each read
``NO_PROXY`` differently (``host:port``, CIDR, a leading dot), and a signed request or a password must go where
the user expects on every path. No Airflow here.

The rules, as requests and botocore apply them:

* the connection's extra ``proxy`` wins; ``none`` there means a direct connection whatever the environment says;
* else ``HTTPS_PROXY`` for an ``https`` URL and ``HTTP_PROXY`` for an ``http`` one (lower-case names first, as
  ``urllib.request.getproxies`` reads them; else ``ALL_PROXY``; a value without a scheme is
  ``http://``), unless ``NO_PROXY`` names the host;
* ``NO_PROXY`` is a comma-separated list of ``*`` (no proxy at all), host names (``example.com`` also covers
  ``api.example.com``; a leading ``.`` or ``*.`` is the same), ``host:port`` and ``[v6]:port`` (that port only),
  IP addresses and CIDR networks (``10.0.0.0/8``). Names compare case-insensitively and are never resolved.
* an explicit proxy is used for loopback addresses too (the emulator on 127.0.0.1): only ``NO_PROXY`` exempts them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

#: The extra ``proxy`` value that means "no proxy, whatever the environment says".
NO_PROXY_VALUE = "none"


def _env(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name.lower()) or environ.get(name.upper()) or "").strip()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` or ``[v6]:port`` -> (host, port); a bare IPv6 address (more colons) has no port."""
    if entry.startswith("["):
        address, _, after = entry[1:].partition("]")
        digits = after.removeprefix(":")
        return address, int(digits) if digits.isdigit() else None
    name, colon, digits = entry.partition(":")
    if colon and digits.isdigit():
        return name, int(digits)
    return entry, None


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (its value ``no_proxy``) names this host (and port)."""
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.removeprefix("*").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def proxy_for(url: str, configured: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """
    Return the proxy URL a request to ``url`` goes through, or ``None`` for a direct connection.

    :param url: the request's URL (its scheme, host and port decide).
    :param configured: the connection's extra ``proxy``: a proxy URL that wins over the environment, ``"none"``
        for no proxy, or ``None``/empty to follow the environment.
    :param environ: the environment to read (default: ``os.environ``).
    """
    if configured:
        return None if configured.strip().lower() == NO_PROXY_VALUE else configured.strip()
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    proxy = _env(env, f"{scheme}_proxy") or _env(env, "all_proxy")
    if not proxy:
        return None
    if bypassed(parts.hostname or "", parts.port or _default_port(scheme), _env(env, "no_proxy")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"  # "proxy.corp:3128": http, as requests reads it


def check_proxy_url(value: str) -> str | None:
    """
    Return why ``value`` is not a usable extra ``proxy`` (``None`` if it is): an ``http``/``https`` URL with a host.

    The reason never repeats the value: it may hold the proxy's password.
    """
    if value.strip().lower() == NO_PROXY_VALUE:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// proxy URL with a host (or {NO_PROXY_VALUE!r})"
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "has an invalid port"
    return None
