"""
Tests of the SDK-HMAC-SHA256 signer.

* The test vectors of ``oms-api.md`` (computed with the official SDK), byte for byte.
* A seeded, randomized cross-check against the official SDK's ``Signer`` (the conformance peer). Each case
  has its own seed, shown in the test id (``sdk-case-<seed>``), so that a failure is reproducible with
  ``pytest 'tests/test_signer.py::test_matches_official_sdk[sdk-case-<seed>]'``.
* Unit checks of the helpers.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest

from airflow_provider_oms import signer

# --------------------------------------------------------------------------------------------------------------
# The official SDK (the `sdk` fixture of tests/conftest.py imports it with HOME pointing at a temporary
# directory: importing its signer writes ~/.huaweicloud/application_id).
# --------------------------------------------------------------------------------------------------------------


def sdk_sign(
    sdk: SimpleNamespace,
    *,
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, Any]],
    headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
) -> tuple[str, str]:
    """Sign with the official SDK; return (Authorization, request URI with query). Inputs are copied."""
    request = sdk.SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params=dict(headers),
        body=bytes(body),
    )
    sdk.Signer(SimpleNamespace(ak=access_key, sk=secret_key)).sign(request)
    return request.header_params["Authorization"], request.uri


def sdk_canonical_query(sdk: SimpleNamespace, query: list[tuple[str, Any]]) -> str:
    return sdk.Signer.process_canonical_query_string(sdk.SdkRequest(query_params=list(query)))


# --------------------------------------------------------------------------------------------------------------
# 1. Test vectors A, C, D of oms-api.md
# --------------------------------------------------------------------------------------------------------------

AK = "EXAMPLEAK0123456789AB"
SK = "EXAMPLESK0123456789abcdefghijklmnopqrstuv"
PROJECT = "0123456789abcdef0123456789abcdef"
TASK = "1234567890123"
DATE = "20240101T000000Z"
HOST = "oms.cn-north-4.myhuaweicloud.com"
USER_AGENT = "huaweicloud-usdk-python/3.0; example-agent"
TOKEN = "EXAMPLE-SECURITY-TOKEN"
BODY_A = (
    b'{"src_ak": "SRC_AK", "src_sk": "SRC_SK", "dst_ak": "DST_AK", "dst_sk": "DST_SK", "migrate_failed_object": false}'
)
BODY_A_SHA256 = "f3212b3536361dbc3c6ae253506d23a720fa3fd5a699bdb08a03e4d82b4fc3ac"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
QUERY_C = [("limit", 10), ("offset", 0), ("status", 2), ("task_name", "my task/1")]
CANONICAL_QUERY_C = "limit=10&offset=0&status=2&task_name=my%20task%2F1"
SIGNED = "content-type;host;user-agent;x-project-id;x-sdk-date"
SIGNED_WITH_TOKEN = "content-type;host;user-agent;x-project-id;x-sdk-date;x-security-token"


def vector_headers(content_type: str, token: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "Host": HOST,
        "User-Agent": USER_AGENT,
        "X-Project-Id": PROJECT,
        "X-Sdk-Date": DATE,
    }
    if token:
        headers["X-Security-Token"] = token
    return headers


class Vector(NamedTuple):
    """A test vector: what is signed, and the signed header names, the canonical request's hash, the signature."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    signed: str
    canonical_sha256: str
    expected_signature: str


def vector_param(*fields: Any, id: str) -> Any:
    return pytest.param(Vector(*fields), id=id)


VECTORS = [
    vector_param(
        "POST",
        f"/v2/{PROJECT}/tasks/{TASK}/start",
        "",
        vector_headers("application/json;charset=utf-8"),
        BODY_A,
        SIGNED,
        "52d4590b6e00e2bf46e8ece1545d322a6c925a33127e5393ff2a6059d2aebdd7",
        "95efb80b359bd89ef859a20058f32d50ce38ce5b658405608f99457caf207b3e",
        id="A-start-task",
    ),
    vector_param(
        "GET",
        f"/v2/{PROJECT}/tasks",
        CANONICAL_QUERY_C,
        vector_headers("application/json"),
        b"",
        SIGNED,
        "4b61dff5759ce6cf8672beb8e295d9394f6e1451b5699272675b5815664d9a84",
        "8e9945f3a2f94518edc5da40ba597b5f6ac674b9a447c5b3a3dfce4de309f3c4",
        id="C-list-tasks",
    ),
    vector_param(
        "POST",
        f"/v2/{PROJECT}/tasks/{TASK}/start",
        "",
        vector_headers("application/json;charset=utf-8", TOKEN),
        BODY_A,
        SIGNED_WITH_TOKEN,
        "10d650b4ed8d9f7634ff5b6cc8caf1644747d29738c177ed45e9b1b1e85dd1e0",
        "4b187e98786e76ce54b567ab67b371a4ad03d41fe9b615705d3270d4cfb8c235",
        id="D-start-task-security-token",
    ),
]


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_canonical_request_hash(vector: Vector) -> None:
    names = signer.signed_header_names(vector.headers)
    assert ";".join(names) == vector.signed
    canonical = signer.canonical_request(vector.method, vector.path, vector.query, vector.headers, names, vector.body)
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == vector.canonical_sha256
    assert signer.string_to_sign(canonical, DATE) == f"SDK-HMAC-SHA256\n{DATE}\n{vector.canonical_sha256}"
    assert signer.signature(SK, signer.string_to_sign(canonical, DATE)) == vector.expected_signature


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_authorization_header(vector: Vector) -> None:
    result = signer.sign(
        method=vector.method,
        path=vector.path,
        query=vector.query,
        headers=vector.headers,
        body=vector.body,
        access_key=AK,
        secret_key=SK,
    )
    assert result["Authorization"] == (
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={vector.signed}, Signature={vector.expected_signature}"
    )
    assert {k: v for k, v in result.items() if k != "Authorization"} == vector.headers


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_agrees_with_official_sdk(sdk: SimpleNamespace, vector: Vector) -> None:
    """The harness itself: the SDK reproduces the documented vectors from the same inputs."""
    authorization, uri = sdk_sign(
        sdk,
        method=vector.method,
        host=HOST,
        path=vector.path,
        query=QUERY_C if vector.query else [],
        headers=vector.headers,
        body=vector.body,
        access_key=AK,
        secret_key=SK,
    )
    assert authorization.endswith(f"SignedHeaders={vector.signed}, Signature={vector.expected_signature}")
    assert uri == vector.path + (f"?{vector.query}" if vector.query else "")


def test_vector_a_body_hash() -> None:
    assert hashlib.sha256(BODY_A).hexdigest() == BODY_A_SHA256
    headers = vector_headers("application/json;charset=utf-8")
    path = f"/v2/{PROJECT}/tasks/{TASK}/start"
    canonical = signer.canonical_request("POST", path, "", headers, SIGNED.split(";"), BODY_A)
    assert canonical.endswith("\n" + BODY_A_SHA256)


def test_empty_body_hash_constant() -> None:
    assert signer.EMPTY_BODY_SHA256 == EMPTY_SHA256 == hashlib.sha256(b"").hexdigest()
    canonical = signer.canonical_request(
        "GET", f"/v2/{PROJECT}/tasks", "", vector_headers("application/json"), SIGNED.split(";"), b""
    )
    assert canonical.endswith("\n" + EMPTY_SHA256)


def test_vector_c_canonical_query() -> None:
    assert signer.canonical_query(QUERY_C) == CANONICAL_QUERY_C
    # The order the parameters come in does not matter.
    assert signer.canonical_query(list(reversed(QUERY_C))) == CANONICAL_QUERY_C
    assert signer.canonical_query(dict(QUERY_C).items()) == CANONICAL_QUERY_C


def test_vector_c_canonical_request_layout() -> None:
    headers = vector_headers("application/json")
    canonical = signer.canonical_request(
        "get", f"/v2/{PROJECT}/tasks", CANONICAL_QUERY_C, headers, SIGNED.split(";"), b""
    )
    assert canonical == "\n".join(
        [
            "GET",
            f"/v2/{PROJECT}/tasks/",
            CANONICAL_QUERY_C,
            "content-type:application/json",
            f"host:{HOST}",
            f"user-agent:{USER_AGENT}",
            f"x-project-id:{PROJECT}",
            f"x-sdk-date:{DATE}",
            "",  # CanonicalHeaders ends with a newline: a blank line precedes SignedHeaders
            SIGNED,
            EMPTY_SHA256,
        ]
    )


# --------------------------------------------------------------------------------------------------------------
# 2. Randomized cross-check against the official SDK
# --------------------------------------------------------------------------------------------------------------

BASE_SEED = 20240101
CASES = 256
METHODS = ("GET", "POST", "PUT", "DELETE")
SPECIAL = " ~+=@!*'(é中-._"
PLAIN = "abcXYZ019"
# '/', '%', '?', '#', '&' go on the wire encoded (quote(safe="")); both signers decode before splitting.
RARE = "/%?#&;,:$"
QUERY_CHARS = " /~é中+=&?#%@!*'(_-.abcXYZ019"
HOSTS = ("oms.cn-north-4.myhuaweicloud.com", "127.0.0.1:8443", "localhost:1234", "oms.ap-southeast-1.example")


def _text(rng: random.Random, alphabet: str, minimum: int, maximum: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(minimum, maximum)))


def _segment(rng: random.Random) -> str:
    alphabet = PLAIN + SPECIAL + (RARE if rng.random() < 0.2 else "")
    return _text(rng, alphabet, 1, 12)


def _query(rng: random.Random) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for _ in range(rng.choice((0, 0, 1, 2, 3, 4, 6))):
        roll = rng.random()
        if pairs and roll < 0.25:
            key = rng.choice(pairs)[0]  # the same key again
        elif pairs and roll < 0.4:
            base = rng.choice(pairs)[0]  # a key that is nearly the same
            key = rng.choice((base + " ", base.upper(), " " + base, base + "~", base + "é", base[:-1] or "k"))
        else:
            key = _text(rng, QUERY_CHARS, 1, 8)
        value = "" if rng.random() < 0.15 else _text(rng, QUERY_CHARS, 1, 10)
        pairs.append((key, value))
    # Non-string values only for keys that occur once: the SDK sorts raw (key, value) tuples, and a str and an
    # int under the same key cannot be compared.
    counts: dict[str, int] = {}
    for key, _ in pairs:
        counts[key] = counts.get(key, 0) + 1
    typed: list[tuple[str, Any]] = []
    for key, value in pairs:
        if counts[key] == 1 and rng.random() < 0.2:
            value = rng.choice((True, False, 0, 7, 100, -3))
        typed.append((key, value))
    return typed


def _body(rng: random.Random) -> bytes:
    if rng.random() < 0.35:
        return b""
    payload: dict[str, Any] = {
        _text(rng, PLAIN + "_é中", 1, 8): rng.choice(
            (_text(rng, QUERY_CHARS, 0, 20), rng.randint(-5, 10**12), True, None, [1, "中"], {"k": "é"})
        )
        for _ in range(rng.randint(0, 5))
    }
    return json.dumps(payload, ensure_ascii=rng.random() < 0.5).encode("utf-8")


def _name(rng: random.Random, name: str) -> str:
    """Randomize the case of a header name (both signers match names case-insensitively)."""
    return rng.choice((name, name, name.lower(), name.upper()))


def random_case(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 (reproducible test inputs)
    segments = [_segment(rng) for _ in range(rng.randint(1, 5))]
    project = _text(rng, "0123456789abcdef", 1, 32)
    path = f"/v2/{project}/" + "/".join(quote(segment, safe="") for segment in segments)
    body = _body(rng)
    host = rng.choice(HOSTS)
    moment = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 100 * 365 * 86400))
    user_agent = rng.choice(("huaweicloud-usdk-python/3.0", "airflow-provider-oms/0.1.0", "ua with  spaces"))
    if rng.random() < 0.2:
        user_agent = f"  {user_agent} "  # values are trimmed by both
    headers = {
        _name(rng, "Content-Type"): "application/json;charset=utf-8" if body else "application/json",
        _name(rng, "Host"): host,
        _name(rng, "User-Agent"): user_agent,
        _name(rng, "X-Project-Id"): project,
        _name(rng, "X-Sdk-Date"): signer.format_sdk_date(moment),
    }
    token = None
    if rng.random() < 0.4:
        token = _text(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_", 1, 200)
        headers[_name(rng, "X-Security-Token")] = token
    if rng.random() < 0.1:
        headers["X_Not_Signed"] = "underscore names are not signed"
    return {
        "seed": seed,
        "method": rng.choice(METHODS),
        "host": host,
        "segments": segments,
        "path": path,
        "query": _query(rng),
        "headers": headers,
        "body": body,
        "token": token,
        "access_key": _text(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 20, 20),
        "secret_key": _text(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40, 40),
    }


@pytest.mark.parametrize("seed", [pytest.param(BASE_SEED + i, id=f"sdk-case-{BASE_SEED + i}") for i in range(CASES)])
def test_matches_official_sdk(sdk: SimpleNamespace, seed: int) -> None:
    case = random_case(seed)
    described = f"seed={seed} case={case!r}"
    query = signer.canonical_query(case["query"])
    ours = signer.sign(
        method=case["method"],
        path=case["path"],
        query=query,
        headers=case["headers"],
        body=case["body"],
        access_key=case["access_key"],
        secret_key=case["secret_key"],
    )["Authorization"]
    theirs, uri = sdk_sign(
        sdk,
        method=case["method"],
        host=case["host"],
        path=case["path"],
        query=case["query"],
        headers=case["headers"],
        body=case["body"],
        access_key=case["access_key"],
        secret_key=case["secret_key"],
    )
    # The query we sign and send is the one the SDK signs and sends.
    assert query == sdk_canonical_query(sdk, case["query"]), described
    assert uri == case["path"] + (f"?{query}" if query else ""), described
    assert ours == theirs, described


def test_random_cases_cover_the_input_space() -> None:
    """The cross-check is only as good as its inputs: every feature the brief names occurs in the cases."""
    cases = [random_case(BASE_SEED + i) for i in range(CASES)]
    assert len(cases) >= 200
    assert {case["method"] for case in cases} == set(METHODS)
    joined_segments = "".join(segment for case in cases for segment in case["segments"])
    for char in " ~é中+=@!*'(/":
        assert char in joined_segments, char
    assert any(len(case["segments"]) >= 3 for case in cases)
    keys = [key for case in cases for key, _ in case["query"]]
    values = [value for case in cases for _, value in case["query"]]
    for char in " /~é中":
        assert any(char in key for key in keys), char
        assert any(isinstance(value, str) and char in value for value in values), char
    assert "" in values
    assert any(isinstance(value, bool) for value in values)
    assert any(isinstance(value, int) and not isinstance(value, bool) for value in values)
    assert any(len({k for k, _ in case["query"]}) < len(case["query"]) for case in cases)  # repeated keys
    assert any(not case["query"] for case in cases)
    assert any(case["body"] == b"" for case in cases)
    assert any(case["body"] not in (b"", b"{}") for case in cases)
    assert any(re.search(rb"[\x80-\xff]", case["body"]) for case in cases)  # raw UTF-8 in the body
    assert any(case["token"] for case in cases)
    assert any(case["token"] is None for case in cases)
    dates = {v for case in cases for k, v in case["headers"].items() if k.lower() == "x-sdk-date"}
    assert len(dates) > 50


# Inputs on which the canonical query would differ from the SDK's if the pairs were sorted after encoding
# (an encoded character starts with '%', 0x25, which sorts before '-', '.', digits, letters and '~'). The SDK
# sorts the raw pairs, then encodes, and so must we: these pin that order.
QUERY_ORDER_CASES = [
    pytest.param([("k", "-"), ("k", "/")], id="value-dash-vs-slash"),
    pytest.param([("k", "a.b"), ("k", "a/b")], id="value-dot-vs-slash"),
    pytest.param([("k", "~"), ("k", "é")], id="value-tilde-vs-unicode"),
    pytest.param([("z", "1"), ("é", "1")], id="key-ascii-vs-unicode"),
    pytest.param([("task_name", "x"), ("中", "y")], id="key-underscore-vs-cjk"),
    pytest.param([("a-", "1"), ("a ", "1")], id="control-key-dash-vs-space"),
    pytest.param([("name", "my task"), ("name", "my-task")], id="control-value-space-vs-dash"),
]


@pytest.mark.parametrize("pairs", QUERY_ORDER_CASES)
def test_canonical_query_order_matches_sdk(sdk: SimpleNamespace, pairs: list[tuple[str, str]]) -> None:
    assert signer.canonical_query(pairs) == sdk_canonical_query(sdk, pairs)
    assert signer.canonical_query(list(reversed(pairs))) == sdk_canonical_query(sdk, pairs)


@pytest.mark.parametrize("pairs", QUERY_ORDER_CASES)
def test_query_order_signature_matches_sdk(sdk: SimpleNamespace, pairs: list[tuple[str, str]]) -> None:
    headers = vector_headers("application/json")
    path = f"/v2/{PROJECT}/tasks"
    ours = signer.sign(
        method="GET",
        path=path,
        query=signer.canonical_query(pairs),
        headers=headers,
        body=b"",
        access_key=AK,
        secret_key=SK,
    )["Authorization"]
    theirs, _ = sdk_sign(
        sdk, method="GET", host=HOST, path=path, query=pairs, headers=headers, body=b"", access_key=AK, secret_key=SK
    )
    assert ours == theirs


# --------------------------------------------------------------------------------------------------------------
# 3. Unit checks
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/p/tasks", "/v2/p/tasks/"),
        ("/v2/p/tasks/", "/v2/p/tasks/"),
        ("/", "/"),
        ("/a%20b/c~d/%C3%A9", "/a%20b/c~d/%C3%A9/"),
        ("/a b/é/中", "/a%20b/%C3%A9/%E4%B8%AD/"),
        ("/a+b/c=d/e@f/g!h/i*j/k'l/m(n)", "/a%2Bb/c%3Dd/e%40f/g%21h/i%2Aj/k%27l/m%28n%29/"),
        ("/A-Z_a.z~0", "/A-Z_a.z~0/"),
        ("/%7E/%41", "/~/A/"),  # unreserved characters are decoded
        ("/x%2Fy", "/x/y/"),  # like the SDK: decoded before being split
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert signer.canonical_uri(path) == expected


def test_canonical_uri_encodes_each_segment_of_a_quoted_path() -> None:
    segments = ["a b", "~x", "é中", "+=@!*'("]
    wire = "/" + "/".join(quote(segment, safe="") for segment in segments)
    assert signer.canonical_uri(wire) == "/" + "/".join(quote(segment, safe="~") for segment in segments) + "/"
    assert signer.canonical_uri(wire).count("/") == len(segments) + 1


def test_canonical_query_encoding() -> None:
    assert signer.canonical_query([]) == ""
    assert signer.canonical_query([("a", "")]) == "a="
    assert signer.canonical_query([("b", True), ("a", False)]) == "a=false&b=true"
    assert signer.canonical_query([("k e", "v/~+é")]) == "k%20e=v%2F~%2B%C3%A9"
    assert signer.canonical_query([("k", "b"), ("k", "a")]) == "k=a&k=b"


def test_signed_header_names() -> None:
    names = signer.signed_header_names({"X-Sdk-Date": "d", "host": "h", "Content_Type": "x", "B": "b"})
    assert names == ["b", "host", "x-sdk-date"]


def test_canonical_request_refuses_missing_signed_header() -> None:
    with pytest.raises(ValueError, match="x-project-id"):
        signer.canonical_request("GET", "/", "", {"Host": "h"}, ["host", "x-project-id"], b"")


def test_authorization_round_trip() -> None:
    names = ["content-type", "host", "x-sdk-date"]
    value = signer.authorization_header(AK, names, "ab" * 32)
    assert value == f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-sdk-date, Signature={'ab' * 32}"
    parsed = signer.parse_authorization(value)
    assert parsed == signer.ParsedAuthorization(access_key=AK, signed_headers=names, signature="ab" * 32)


def test_parse_authorization_of_a_signed_request() -> None:
    headers = vector_headers("application/json;charset=utf-8", TOKEN)
    signed = signer.sign(
        method="POST", path="/v2/p/tasks", query="", headers=headers, body=b"{}", access_key=AK, secret_key=SK
    )
    parsed = signer.parse_authorization(signed["Authorization"])
    assert parsed is not None
    assert parsed.access_key == AK
    assert ";".join(parsed.signed_headers) == SIGNED_WITH_TOKEN
    assert re.fullmatch("[0-9a-f]{64}", parsed.signature)


def test_parse_authorization_is_lenient_on_case_and_spaces() -> None:
    parsed = signer.parse_authorization(f"  SDK-HMAC-SHA256   Access={AK},SignedHeaders=host,  Signature=ABCDEF  ")
    assert parsed == signer.ParsedAuthorization(access_key=AK, signed_headers=["host"], signature="abcdef")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SDK-HMAC-SHA256",
        f"Bearer {AK}",
        f"SDK-HMAC-SHA1 Access={AK}, SignedHeaders=host, Signature=abcdef",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host",
        "SDK-HMAC-SHA256 SignedHeaders=host, Signature=abcdef",
        "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=abcdef",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=, Signature=abcdef",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host, Signature=",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host, Signature=xyz123",
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host, Signature=abcdef, Extra=1",
        f"SDK-HMAC-SHA256 Signature=abcdef, SignedHeaders=host, Access={AK}",
        f"sdk-hmac-sha256 Access={AK}, SignedHeaders=host, Signature=abcdef",
    ],
)
def test_parse_authorization_rejects_malformed(value: str) -> None:
    assert signer.parse_authorization(value) is None


def test_sign_requires_x_sdk_date() -> None:
    headers = vector_headers("application/json")
    del headers["X-Sdk-Date"]
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        signer.sign(method="GET", path="/", query="", headers=headers, body=b"", access_key=AK, secret_key=SK)


def test_sign_finds_x_sdk_date_in_any_case_and_does_not_mutate_headers() -> None:
    headers = vector_headers("application/json;charset=utf-8")
    del headers["X-Sdk-Date"]
    headers["x-sdk-date"] = DATE
    before = dict(headers)
    signed = signer.sign(
        method="POST",
        path=f"/v2/{PROJECT}/tasks/{TASK}/start",
        query="",
        headers=headers,
        body=BODY_A,
        access_key=AK,
        secret_key=SK,
    )
    assert headers == before
    assert "Authorization" not in headers
    assert signed["Authorization"].endswith(
        "Signature=95efb80b359bd89ef859a20058f32d50ce38ce5b658405608f99457caf207b3e"
    )


def test_signature_depends_on_every_input() -> None:
    base: dict[str, Any] = {
        "method": "POST",
        "path": f"/v2/{PROJECT}/tasks/{TASK}/start",
        "query": "",
        "headers": vector_headers("application/json;charset=utf-8"),
        "body": BODY_A,
        "access_key": AK,
        "secret_key": SK,
    }
    reference = signer.sign(**base)["Authorization"]
    variants = [
        {"method": "PUT"},
        {"path": f"/v2/{PROJECT}/tasks/{TASK}/stop"},
        {"query": "a=1"},
        {"headers": {**base["headers"], "X-Sdk-Date": "20240101T000001Z"}},
        {"headers": {**base["headers"], "Host": HOST + ":443"}},
        {"body": BODY_A + b" "},
        {"secret_key": SK + "x"},
    ]
    for change in variants:
        assert signer.sign(**{**base, **change})["Authorization"] != reference, change


def test_format_and_parse_sdk_date_round_trip() -> None:
    moment = datetime(2024, 2, 29, 23, 59, 58, tzinfo=timezone.utc)
    assert signer.format_sdk_date(moment) == "20240229T235958Z"
    assert signer.parse_sdk_date("20240229T235958Z") == moment
    assert signer.parse_sdk_date(signer.format_sdk_date(moment)) == moment
    assert signer.parse_sdk_date(DATE).tzinfo == timezone.utc


def test_format_sdk_date_converts_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert signer.format_sdk_date(datetime(2024, 1, 1, 8, 0, 0, tzinfo=beijing)) == DATE
    assert signer.format_sdk_date(datetime(2024, 1, 1, 0, 0, 0, 999999, tzinfo=timezone.utc)) == DATE


def test_format_sdk_date_defaults_to_now() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    value = signer.format_sdk_date()
    after = datetime.now(timezone.utc)
    assert re.fullmatch(r"\d{8}T\d{6}Z", value)
    assert before <= signer.parse_sdk_date(value) <= after


def test_format_sdk_date_now_follows_the_clock_second_by_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "Now" follows the clock: the same second gives the same date, the next second the next date."""
    clock = [datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() + 0.25]
    monkeypatch.setattr(signer.time, "time", lambda: clock[0])
    assert signer.format_sdk_date() == DATE
    clock[0] += 0.7  # same second
    assert signer.format_sdk_date() == DATE
    clock[0] += 0.1  # 00:00:01.05
    assert signer.format_sdk_date() == "20240101T000001Z"
    clock[0] += 3600
    assert signer.format_sdk_date() == "20240101T010001Z"


@pytest.mark.parametrize("value", ["", "2024-01-01T00:00:00Z", "20240101T000000", "20241301T000000Z", "now"])
def test_parse_sdk_date_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        signer.parse_sdk_date(value)


# RFC 4231's HMAC-SHA256 test cases 1 and 2 (the others' keys are not UTF-8 text, as a secret key is).
RFC_4231 = [
    ("\x0b" * 20, "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    ("Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
]


@pytest.mark.parametrize(("key", "message", "expected"), RFC_4231)
def test_signature_matches_rfc_4231(key: str, message: str, expected: str) -> None:
    assert signer.signature(key, message) == expected


@pytest.mark.parametrize("key_length", [0, 1, 40, 63, 64, 65, 200])
def test_signature_equals_the_official_sdk_for_every_key_length(key_length: int) -> None:
    # Keys shorter than, as long as and longer than SHA-256's 64-byte block (HMAC hashes a longer key first).
    from huaweicloudsdkcore.signer.signer import Signer

    secret = ("sk-é" * 100)[:key_length]
    message = "SDK-HMAC-SHA256\n20240101T000000Z\n" + "ab" * 40
    sdk = Signer(SimpleNamespace(ak="ak", sk=secret))
    assert signer.signature(secret, message) == sdk._sign_string_to_sign(message, secret)


def test_signer_uses_only_the_standard_librarys_hmac_and_hashlib() -> None:
    # FIPS-capable signing: HMAC through `hmac` (OpenSSL's provider), no private CPython module, no hand-written
    # HMAC (no XOR pads), nothing imported dynamically.
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(signer))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {"hmac", "hashlib"} <= imported
    assert not [name for name in imported if (name.startswith("_") and name != "__future__") or name == "importlib"], (
        imported
    )
    source = inspect.getsource(signer)
    assert "0x36" not in source and "0x5c" not in source.lower() and "translate(" not in source
    calls = [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    assert "hmac.new" in calls
