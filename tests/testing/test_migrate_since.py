"""The emulator honours CreateTaskReq ``migrate_since``: only source objects modified after it are migrated."""

from __future__ import annotations

import os
import time

from airflow_provider_oms.constants import ERROR_INVALID_PARAMETER, TaskStatus
from airflow_provider_oms.testing import OMSEmulator
from tests.testing.helpers import OMSCaller, assert_error, bucket_keys, task_body, write_objects

OLD, NEW = 1_600_000_000, 1_700_000_000


def test_only_objects_modified_after_migrate_since_are_copied(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    source = oms_emulator.bucket_path("src-bucket")
    write_objects(source, {"old.txt": "old", "docs/old.txt": "old", "new.txt": "new!", "docs/new.txt": "new!"})
    for key, when in {"old.txt": OLD, "docs/old.txt": OLD, "new.txt": NEW, "docs/new.txt": NEW}.items():
        os.utime(source / key, (when, when))

    task_id = oms.create({**task_body(save_prefix="landing/"), "migrate_since": OLD + 1})
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})

    assert task["status"] == TaskStatus.SUCCEEDED
    assert bucket_keys(oms_emulator.data_dir / "dst-bucket") == {"landing/new.txt", "landing/docs/new.txt"}
    assert (task["total_num"], task["successful_num"], task["total_size"]) == (2, 2, 8)


def test_without_migrate_since_everything_is_copied(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    source = oms_emulator.bucket_path("src-bucket")
    write_objects(source, {"old.txt": "old", "new.txt": "new!"})
    os.utime(source / "old.txt", (OLD, OLD))
    task_id = oms.create(task_body(save_prefix=""))
    oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    assert bucket_keys(oms_emulator.data_dir / "dst-bucket") == {"old.txt", "new.txt"}


def test_a_migrate_since_in_the_future_copies_nothing(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    write_objects(oms_emulator.bucket_path("src-bucket"), {"a.txt": "a"})
    task_id = oms.create({**task_body(), "migrate_since": int(time.time()) + 3600})
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})
    assert (task["status"], task["total_num"]) == (TaskStatus.SUCCEEDED, 0)


def test_a_migrate_since_that_is_not_a_whole_number_is_refused(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    for bad in ("1700000000", -1, 1.5, True):
        response = oms("POST", "/tasks", json_body={**task_body(), "migrate_since": bad})
        assert "migrate_since" in str(assert_error(response, 400, ERROR_INVALID_PARAMETER))
