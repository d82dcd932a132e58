"""Signed requests to the emulator over real HTTP, and small builders for task bodies and bucket files."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from airflow_provider_oms import signer
from airflow_provider_oms.client import Credentials, OMSRequestBuilder, PreparedCall
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_PROJECT_ID, EMULATOR_SK, OMSEmulator

# Fake credentials inside request bodies: the emulator checks their shape and must never echo them.
SRC_AK, SRC_SK = "SRCAK-never-echoed", "SRCSK-never-echoed"
DST_AK, DST_SK = "DSTAK-never-echoed", "DSTSK-never-echoed"
START_BODY = {"dst_ak": DST_AK, "dst_sk": DST_SK}


def task_body(src: str = "src-bucket", dst: str = "dst-bucket", **fields: Any) -> dict[str, Any]:
    """A CreateTaskReq body; ``object_key`` and ``save_prefix`` go into the nodes, the rest at the top."""
    body: dict[str, Any] = {
        "src_node": {"region": "cn-north-4", "ak": SRC_AK, "sk": SRC_SK, "bucket": src, "cloud_type": "HuaweiCloud"},
        "dst_node": {"region": "cn-north-4", "ak": DST_AK, "sk": DST_SK, "bucket": dst},
    }
    if "object_key" in fields:
        body["src_node"]["object_key"] = fields.pop("object_key")
    if "save_prefix" in fields:
        body["dst_node"]["save_prefix"] = fields.pop("save_prefix")
    body.update(fields)
    return body


def write_objects(bucket: Path, objects: Mapping[str, str]) -> None:
    """Write ``{key: content}`` into a bucket folder."""
    for key, content in objects.items():
        path = bucket.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def bucket_keys(bucket: Path) -> set[str]:
    """Every object key in a bucket folder."""
    return {path.relative_to(bucket).as_posix() for path in bucket.rglob("*") if path.is_file()}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class OMSCaller:
    """Signs requests with the provider's OMSRequestBuilder and sends them with ``requests`` (keep-alive)."""

    def __init__(
        self, url: str, *, project_id: str = EMULATOR_PROJECT_ID, credentials: Credentials | None = None
    ) -> None:
        self.builder = OMSRequestBuilder(url, project_id, credentials or Credentials(EMULATOR_AK, EMULATOR_SK))
        self.session = requests.Session()

    def prepare(
        self,
        method: str,
        template: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        sdk_date: str | None = None,
        **path: str | int,
    ) -> PreparedCall:
        return self.builder.build(
            method,
            self.builder.path(template, **{name: str(value) for name, value in path.items()}),
            query=query,
            json_body=json_body,
            sdk_date=sdk_date,
        )

    def send(self, call: PreparedCall) -> requests.Response:
        return self.session.request(call.method, call.url, headers=call.headers, data=call.body, timeout=10)

    def __call__(self, method: str, template: str, **kwargs: Any) -> requests.Response:
        return self.send(self.prepare(method, template, **kwargs))

    def create(self, body: Mapping[str, Any]) -> int:
        response = self("POST", "/tasks", json_body=body)
        assert response.status_code == 200, response.text
        return int(response.json()["id"])

    def start(self, task_id: int, **fields: Any) -> requests.Response:
        return self("POST", "/tasks/{task_id}/start", task_id=task_id, json_body={**START_BODY, **fields})

    def stop(self, task_id: int) -> requests.Response:
        return self("POST", "/tasks/{task_id}/stop", task_id=task_id)

    def show(self, task_id: int | str) -> requests.Response:
        return self("GET", "/tasks/{task_id}", task_id=task_id)

    def close(self) -> None:
        self.session.close()


def assert_error(response: requests.Response, status: int, error_code: str) -> dict[str, Any]:
    """Check an error answer and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == error_code, body
    assert response.headers["X-Request-Id"]
    return body


def send_raw_signed(
    emulator: OMSEmulator, method: str, path: str, *, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> requests.Response:
    """Sign and send exactly these bytes and headers: requests that OMSRequestBuilder would never build."""
    to_sign = {
        "Host": f"127.0.0.1:{emulator.port}",
        "Content-Type": "application/json",
        signer.HEADER_DATE: signer.format_sdk_date(),
        **(headers or {}),
    }
    signed = signer.sign(
        method=method, path=path, query="", headers=to_sign, body=body, access_key=EMULATOR_AK, secret_key=EMULATOR_SK
    )
    return requests.request(method, emulator.url + path, headers=signed, data=body, timeout=10)
