"""The one proxy decision every path takes (``proxies.proxy_for``) and its ``NO_PROXY`` rules, as plain functions."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_oms.proxies import bypassed, check_proxy_url, proxy_for

ENV = {"HTTP_PROXY": "http://plain:1", "HTTPS_PROXY": "http://tls:2"}


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypass"),
    [
        ("http://api.example.com", "example.com", True),
        ("http://api.example.com", ".example.com", True),
        ("http://api.example.com", "*.example.com", True),
        ("http://example.com", "example.com", True),
        ("http://example.com", ".example.com", True),  # as curl and requests: the domain itself too
        ("http://badexample.com", "example.com", False),
        ("http://example.com.evil.org", "example.com", False),
        ("http://API.Example.COM", "example.com", True),
        ("http://api.example.com", "EXAMPLE.com", True),
        ("http://example.com:8080", "example.com:8080", True),
        ("http://example.com:8081", "example.com:8080", False),
        ("https://example.com", "example.com:443", True),
        ("http://example.com", "example.com:443", False),
        ("http://10.1.2.3", "10.0.0.0/8", True),
        ("http://11.1.2.3", "10.0.0.0/8", False),
        ("http://10.1.2.3:9000", "10.1.2.3:9000", True),
        ("http://10.1.2.3:9001", "10.1.2.3:9000", False),
        ("http://127.0.0.1:5000", "127.0.0.1", True),
        ("http://127.0.0.1:5000", "localhost", False),  # names are not resolved
        ("http://[::1]:5000", "::1", True),
        ("http://[::1]:5000", "[::1]", True),
        ("http://[::1]:5000", "[::1]:5000", True),
        ("http://[::1]:5001", "[::1]:5000", False),
        ("http://[fd00::5]", "fd00::/8", True),
        ("http://anything", "*", True),
        ("http://anything", "other.org, *", True),
        ("http://anything", "", False),
        ("http://a.example.com", " other.org , example.com ", True),
        ("http://a.example.com", ",,", False),
    ],
)
def test_no_proxy_rules(url: str, no_proxy: str, bypass: bool) -> None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    assert bypassed(parts.hostname or "", port, no_proxy) is bypass
    env = {**ENV, "NO_PROXY": no_proxy}
    assert proxy_for(url, None, env) == (None if bypass else env[f"{parts.scheme.upper()}_PROXY"])


def test_the_extra_wins_and_none_means_direct() -> None:
    env = {**ENV, "NO_PROXY": "*"}
    assert proxy_for("https://oms.example.com", "http://extra:1", env) == "http://extra:1"  # NO_PROXY is for the env
    assert proxy_for("https://oms.example.com", " http://extra:1 ", {}) == "http://extra:1"
    assert proxy_for("https://oms.example.com", "none", ENV) is None
    assert proxy_for("https://oms.example.com", "None", ENV) is None
    assert proxy_for("https://oms.example.com", "", ENV) == "http://tls:2"  # empty: the environment's
    assert proxy_for("https://oms.example.com", None, ENV) == "http://tls:2"


def test_the_environment_by_scheme_as_requests_reads_it() -> None:
    both = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1", "HTTP_PROXY": "http://plain:1"}
    assert proxy_for("https://oms.example.com", None, both) == "http://lower:1"  # lower-case first, as urllib
    assert proxy_for("http://oms.example.com", None, both) == "http://plain:1"
    assert proxy_for("https://oms.example.com", None, {"HTTPS_PROXY": "http://upper:1"}) == "http://upper:1"
    assert proxy_for("https://oms.example.com", None, {"HTTP_PROXY": "http://plain:1"}) is None  # https: not HTTP_
    assert proxy_for("http://oms.example.com", None, {"HTTPS_PROXY": "http://tls:2"}) is None
    assert proxy_for("https://oms.example.com", None, {"ALL_PROXY": "http://all:3"}) == "http://all:3"
    assert proxy_for("https://oms.example.com", None, {"all_proxy": "http://all:3", **ENV}) == "http://tls:2"
    assert proxy_for("https://oms.example.com", None, {"HTTPS_PROXY": "proxy.corp:3128"}) == "http://proxy.corp:3128"
    assert proxy_for("https://oms.example.com", None, {"HTTPS_PROXY": "  "}) is None
    assert proxy_for("https://oms.example.com", None, {"no_proxy": "example.com", **ENV}) is None
    assert proxy_for("https://oms.example.com", None, {}) is None


def test_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "all_proxy", "no_proxy", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://from-env:8")
    assert proxy_for("https://oms.example.com", None) == "http://from-env:8"


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        ("http://proxy.corp:3128", True),
        ("https://user:p%40ss@proxy.corp", True),
        ("none", True),
        ("proxy.corp:3128", False),
        ("socks5://proxy.corp:1080", False),
        ("http://", False),
        ("http://proxy.corp:99999", False),
    ],
)
def test_which_extra_values_are_proxies(value: str, usable: bool) -> None:
    why = check_proxy_url(value)
    assert (why is None) is usable
    assert why is None or "p%40ss" not in why
