"""
The official Huawei Cloud SDK (huaweicloudsdkoms) works against the emulator unchanged.

The SDK is the conformance peer: it signs with its own signer and parses answers with its own models, so the
emulator cannot agree with the provider's code by sharing its mistakes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import EMULATOR_AK, EMULATOR_SK, OMSEmulator
from tests.testing.helpers import bucket_keys, write_objects


def test_official_sdk_drives_a_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing the SDK writes ~/.huaweicloud/application_id: keep it out of the real home.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkoms.v2 import (
        CreateTaskReq,
        CreateTaskRequest,
        DeleteTaskRequest,
        DstNodeReq,
        ListTasksRequest,
        OmsClient,
        ShowTaskRequest,
        SrcNodeReq,
        StartTaskReq,
        StartTaskRequest,
        StopTaskRequest,
    )

    # Objects take 0.2 s each and pausing 0.5 s, so that the task is surely seen running, then pausing.
    with OMSEmulator(tmp_path / "data", object_delay=0.2, pausing_delay=0.5) as emulator:
        write_objects(emulator.bucket_path("sdk-source"), {f"object-{index}.txt": "x" * index for index in range(8)})
        client = (
            OmsClient.new_builder()
            .with_credentials(BasicCredentials(EMULATOR_AK, EMULATOR_SK, emulator.project_id))
            .with_endpoints([emulator.url])
            .build()
        )
        created = client.create_task(
            CreateTaskRequest(
                body=CreateTaskReq(
                    task_type="prefix",
                    src_node=SrcNodeReq(
                        cloud_type="HuaweiCloud", region="cn-north-4", ak="SRC", sk="SRC", bucket="sdk-source"
                    ),
                    dst_node=DstNodeReq(
                        ak="DST", sk="DST", bucket="sdk-target", region="cn-north-4", save_prefix="in/"
                    ),
                    description="created by the official SDK",
                )
            )
        )
        assert created.status_code == 200
        assert created.task_name.startswith("oms-task-")
        task_id = created.id
        emulator.wait_for_status(task_id, {TaskStatus.RUNNING})

        with pytest.raises(ClientRequestException) as raised:
            client.start_task(StartTaskRequest(task_id=str(task_id), body=StartTaskReq(dst_ak="DST", dst_sk="DST")))
        assert (raised.value.status_code, raised.value.error_code) == (400, "OMS.0065")
        assert raised.value.request_id

        assert client.stop_task(StopTaskRequest(task_id=str(task_id))).status_code == 200
        shown = client.show_task(ShowTaskRequest(task_id=str(task_id)))
        assert shown.status == TaskStatus.PAUSING
        assert shown.dst_node.save_prefix == "in/"
        assert shown.src_node.bucket == "sdk-source"
        emulator.wait_for_status(task_id, {TaskStatus.PAUSED})

        listed = client.list_tasks(ListTasksRequest(limit=5, offset=0, status=TaskStatus.PAUSED))
        assert listed.count == 1
        assert [task.id for task in listed.tasks] == [task_id]
        assert listed.tasks[0].description == "created by the official SDK"

        started = client.start_task(
            StartTaskRequest(
                task_id=str(task_id),
                body=StartTaskReq(src_ak="SRC", src_sk="SRC", dst_ak="DST", dst_sk="DST", migrate_failed_object=False),
            )
        )
        assert started.status_code == 200
        emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
        shown = client.show_task(ShowTaskRequest(task_id=str(task_id)))
        assert (shown.status, shown.total_num, shown.failed_num, shown.progress) == (5, 8, 0, 1.0)
        assert bucket_keys(emulator.data_dir / "sdk-target") == {f"in/object-{index}.txt" for index in range(8)}

        assert client.delete_task(DeleteTaskRequest(task_id=str(task_id))).status_code == 200
        with pytest.raises(ClientRequestException) as raised:
            client.show_task(ShowTaskRequest(task_id=str(task_id)))
        assert (raised.value.status_code, raised.value.error_code) == (404, "OMS.1009")
