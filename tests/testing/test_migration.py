"""Tasks really copy files between bucket folders; fail rules, restarts and pauses behave like OMS."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.testing import OMSEmulator, OMSEmulatorError
from tests.testing.helpers import OMSCaller, assert_error, bucket_keys, task_body, wait_until, write_objects

OBJECTS = {
    "a.txt": "alpha",
    "docs/b.txt": "bravo!",
    "docs/deep/c.bin": "charlie-charlie",
    "logs/d.log": "delta",
    "logs/e.log": "echo",
}


@pytest.fixture
def source(oms_emulator: OMSEmulator) -> Path:
    bucket = oms_emulator.bucket_path("src-bucket")
    write_objects(bucket, OBJECTS)
    return bucket


def test_objects_are_copied_under_save_prefix(oms: OMSCaller, oms_emulator: OMSEmulator, source: Path) -> None:
    os.utime(source / "a.txt", (1_600_000_000, 1_600_000_000))
    task_id = oms.create(task_body(save_prefix="backup/2024/"))
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})

    destination = oms_emulator.data_dir / "dst-bucket"
    assert bucket_keys(destination) == {f"backup/2024/{key}" for key in OBJECTS}
    for key, content in OBJECTS.items():
        assert (destination / "backup/2024" / key).read_text() == content
    assert (destination / "backup/2024/a.txt").stat().st_mtime == 1_600_000_000
    total_size = sum(len(content) for content in OBJECTS.values())
    assert task["status"] == TaskStatus.SUCCEEDED
    assert (task["total_num"], task["successful_num"], task["failed_num"], task["skipped_num"]) == (5, 5, 0, 0)
    assert task["total_size"] == task["complete_size"] == task["real_size"] == total_size
    assert task["progress"] == 1.0
    assert task["is_query_over"] is True
    assert task["start_time"] > 1_700_000_000_000
    assert task["left_time"] == 0
    assert task["error_reason"] is None
    assert task["failed_object_record"] is None
    assert oms.show(task_id).json() == task


@pytest.mark.parametrize(
    ("task_type", "object_key", "copied", "failed"),
    [
        ("object", ["a.txt", "logs/"], {"a.txt", "logs/d.log", "logs/e.log"}, 0),
        ("object", ["docs/b.txt", "docs/deep"], {"docs/b.txt", "docs/deep/c.bin"}, 0),
        ("object", [""], set(OBJECTS), 0),
        ("object", ["a.txt", "no-such.txt"], {"a.txt"}, 1),
        ("prefix", ["logs/d", "a"], {"logs/d.log", "a.txt"}, 0),
        ("prefix", ["nothing/"], set(), 0),
    ],
)
def test_object_keys_select_objects(
    oms: OMSCaller,
    oms_emulator: OMSEmulator,
    source: Path,
    task_type: str,
    object_key: list[str],
    copied: set[str],
    failed: int,
) -> None:
    task_id = oms.create(task_body(task_type=task_type, object_key=object_key))
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})
    failed_object_lists = {key for key in bucket_keys(oms_emulator.data_dir / "dst-bucket") if key.startswith("oms/")}
    assert bucket_keys(oms_emulator.data_dir / "dst-bucket") - failed_object_lists == copied
    assert len(failed_object_lists) == (1 if failed else 0)
    assert (task["successful_num"], task["failed_num"]) == (len(copied), failed)
    assert task["status"] == (TaskStatus.FAILED if failed else TaskStatus.SUCCEEDED)


@pytest.mark.parametrize(
    ("mode", "existing", "expected_content", "skipped"),
    [
        ("SIZE_LAST_MODIFIED_COMPARISON_OVERWRITE", "same", "alpha", 1),
        ("SIZE_LAST_MODIFIED_COMPARISON_OVERWRITE", "older", "alpha", 0),
        ("SIZE_LAST_MODIFIED_COMPARISON_OVERWRITE", "other size", "alpha", 0),
        ("CRC64_COMPARISON_OVERWRITE", "same", "alpha", 1),
        ("NO_OVERWRITE", "other size", "other size", 1),
        ("NO_OVERWRITE", "absent", "alpha", 0),
        ("FULL_OVERWRITE", "same", "alpha", 0),
    ],
)
def test_object_overwrite_mode(
    oms: OMSCaller,
    oms_emulator: OMSEmulator,
    source: Path,
    mode: str,
    existing: str,
    expected_content: str,
    skipped: int,
) -> None:
    target = oms_emulator.bucket_path("dst-bucket") / "a.txt"
    source_mtime = (source / "a.txt").stat().st_mtime
    if existing == "same":
        target.write_text("alpha")
        os.utime(target, (source_mtime, source_mtime))
    elif existing == "older":
        target.write_text("ALPHA")
        os.utime(target, (source_mtime - 60, source_mtime - 60))
    elif existing == "other size":
        target.write_text("other size")
    task_id = oms.create(task_body(object_key=["a.txt"], object_overwrite_mode=mode))
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED})
    assert target.read_text() == expected_content
    assert (task["skipped_num"], task["successful_num"]) == (skipped, 1 - skipped)
    assert task["real_size"] == (0 if skipped else len("alpha"))


def test_missing_source_bucket_fails_the_task(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    task_id = oms.create(task_body(src="no-such-bucket"))
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.FAILED})
    assert task["error_reason"]["error_code"] == "TRF.0015"
    assert "source bucket" in task["error_reason"]["error_msg"]
    assert task["failed_object_record"] is None


def failed_run(oms: OMSCaller, emulator: OMSEmulator, **rule: int | None) -> tuple[int, dict]:
    """Run a task over OBJECTS whose two logs fail; return its id and the failed task."""
    emulator.add_fail_rule("logs/*.log", **rule)
    task_id = oms.create(task_body(save_prefix="copy/"))
    return task_id, emulator.wait_for_status(task_id, {TaskStatus.FAILED})


def test_fail_rule_fails_the_task_and_writes_the_failed_object_list(
    oms: OMSCaller, oms_emulator: OMSEmulator, source: Path
) -> None:
    _, task = failed_run(oms, oms_emulator)
    assert (task["total_num"], task["successful_num"], task["failed_num"]) == (5, 3, 2)
    assert task["error_reason"] == {"error_code": "TRF.0001", "error_msg": "2 objects failed to migrate."}
    record = task["failed_object_record"]
    assert record == {
        "result": True,
        "list_file_key": f"oms/failed_object_lists/{task['name']}/1.txt",
        "error_code": "",
    }
    list_file = oms_emulator.data_dir / "dst-bucket" / record["list_file_key"]
    assert list_file.read_text().splitlines() == ["logs/d.log", "logs/e.log"]
    assert not (oms_emulator.data_dir / "dst-bucket/copy/logs").exists()
    assert task["progress"] < 1.0


def test_migrate_failed_object_copies_only_the_failed_objects(tmp_path: Path) -> None:
    # Only copied objects take time at the speed limit: the first run, whose logs fail before being copied, is
    # quick, and the retry of the two 100-byte logs lasts about a second, long enough to be seen retrying.
    objects = {"a.txt": "alpha", "docs/b.txt": "bravo!", "logs/d.log": "d" * 100, "logs/e.log": "e" * 100}
    with OMSEmulator(tmp_path, bytes_per_second=200) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), objects)
        oms = OMSCaller(emulator.url)
        task_id, _ = failed_run(oms, emulator, times=1)
        copy = emulator.data_dir / "dst-bucket/copy"
        (copy / "a.txt").unlink()  # a previously successful object

        assert oms.start(task_id, migrate_failed_object=True).status_code == 200
        emulator.wait_for_status(task_id, {TaskStatus.RETRYING})
        task = emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})

    assert task["status"] == TaskStatus.SUCCEEDED
    assert not (copy / "a.txt").exists()
    assert (copy / "logs/d.log").read_text() == objects["logs/d.log"]
    assert (copy / "logs/e.log").read_text() == objects["logs/e.log"]
    # The retry completes the same task: 2 objects from the first run, 2 from the retry.
    assert (task["total_num"], task["successful_num"], task["failed_num"]) == (4, 4, 0)
    assert task["progress"] == 1.0
    assert task["error_reason"] is None and task["failed_object_record"] is None


def test_failing_retry_writes_a_new_list_for_the_run(oms: OMSCaller, oms_emulator: OMSEmulator, source: Path) -> None:
    task_id, first = failed_run(oms, oms_emulator, times=2)
    assert oms.start(task_id, migrate_failed_object=True).status_code == 200
    oms_emulator.wait_for_status(task_id, {TaskStatus.RETRYING, TaskStatus.FAILED})
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.FAILED, TaskStatus.SUCCEEDED})
    assert task["status"] == TaskStatus.FAILED
    assert task["failed_num"] == 2
    assert task["failed_object_record"]["list_file_key"].endswith("/2.txt")
    assert task["failed_object_record"]["list_file_key"] != first["failed_object_record"]["list_file_key"]
    assert oms.start(task_id, migrate_failed_object=True).status_code == 200
    assert oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})["status"] == 5


def test_start_without_the_flag_runs_the_whole_task_again(
    oms: OMSCaller, oms_emulator: OMSEmulator, source: Path
) -> None:
    task_id, _ = failed_run(oms, oms_emulator)
    copy = oms_emulator.data_dir / "dst-bucket/copy"
    (copy / "a.txt").unlink()
    oms_emulator.clear_fail_rules()

    assert oms.start(task_id, migrate_failed_object=False).status_code == 200
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})

    assert task["status"] == TaskStatus.SUCCEEDED
    assert bucket_keys(copy) == set(OBJECTS)
    assert (copy / "a.txt").read_text() == "alpha"
    # a.txt again, plus the two logs that failed; the two unchanged docs are skipped.
    assert (task["total_num"], task["successful_num"], task["skipped_num"], task["failed_num"]) == (5, 3, 2, 0)
    assert task["real_size"] == len("alpha") + len("delta") + len("echo")


def test_migrate_failed_object_after_a_failure_without_a_list_runs_the_whole_task(
    oms: OMSCaller, oms_emulator: OMSEmulator
) -> None:
    task_id = oms.create(task_body())
    assert oms_emulator.wait_for_status(task_id, {TaskStatus.FAILED})["failed_object_record"] is None
    write_objects(oms_emulator.bucket_path("src-bucket"), OBJECTS)
    assert oms.start(task_id, migrate_failed_object=True).status_code == 200
    task = oms_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})
    assert (task["status"], task["total_num"], task["successful_num"]) == (TaskStatus.SUCCEEDED, 5, 5)
    assert bucket_keys(oms_emulator.data_dir / "dst-bucket") == set(OBJECTS)


def assert_counters_consistent(task: dict[str, Any]) -> None:
    assert task["successful_num"] + task["skipped_num"] + task["failed_num"] <= task["total_num"], task
    assert task["complete_size"] <= task["total_size"], task
    assert 0.0 <= task["progress"] <= 1.0, task


@contextmanager
def counters_stay_consistent(emulator: OMSEmulator, task_id: int) -> Iterator[None]:
    """Check the task's counters every few milliseconds while the block runs, and once after it."""
    samples: list[dict[str, Any]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            samples.append(emulator.get_task(task_id))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
    samples.append(emulator.get_task(task_id))
    for task in samples:
        assert_counters_consistent(task)


def test_migrate_failed_object_after_pausing_a_whole_run_runs_the_whole_task(tmp_path: Path) -> None:
    # The failed-object list of an earlier failed run says nothing about what a later run of the whole task left
    # undone: once paused, such a task runs whole again, whatever migrate_failed_object says. Copies take 0.1 s
    # each at the speed limit, so that the task can be paused part way.
    objects = {f"part-{index:02}.dat": f"{index:02}" * 50 for index in range(10)}
    with OMSEmulator(tmp_path, bytes_per_second=1000) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {**objects, "stale-failure.dat": "failed once"})
        emulator.add_fail_rule("stale-failure.dat", times=1)
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body())
        destination = emulator.data_dir / "dst-bucket"
        with counters_stay_consistent(emulator, task_id):
            assert emulator.wait_for_status(task_id, {TaskStatus.FAILED})["failed_num"] == 1
            for key in objects:
                (destination / key).unlink()  # lost since: only a run of the whole task brings them back

            assert oms.start(task_id, migrate_failed_object=False).status_code == 200
            # Running first: until then the counters are still those of the failed run.
            emulator.wait_for_status(task_id, {TaskStatus.RUNNING})
            wait_until(lambda: emulator.get_task(task_id)["successful_num"] >= 2)
            emulator.pause_task(task_id)
            paused = emulator.wait_for_status(task_id, {TaskStatus.PAUSED})
            assert 2 <= paused["successful_num"] < len(objects)
            assert paused["failed_num"] == 0

            assert oms.start(task_id, migrate_failed_object=True).status_code == 200
            done = emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})

    assert done["status"] == TaskStatus.SUCCEEDED
    assert set(objects) | {"stale-failure.dat"} <= bucket_keys(destination)
    copied_before_the_pause = paused["successful_num"]
    assert (done["total_num"], done["skipped_num"], done["successful_num"], done["failed_num"]) == (
        11,
        copied_before_the_pause,
        11 - copied_before_the_pause,
        0,
    )
    assert done["complete_size"] == done["total_size"]
    assert done["progress"] == 1.0


def test_migrate_failed_object_after_pausing_a_retry_resumes_the_retry(tmp_path: Path) -> None:
    # Only copies take time at the speed limit (0.1 s each here): failing objects fail at once, so the first run
    # is quick and the retry slow enough to be paused part way.
    failing = {f"retry-{index}.dat": f"{index}" * 100 for index in range(8)}
    failing["a-twice.dat"] = "t" * 100  # tried first; it fails in the first run and again in the first retry
    with OMSEmulator(tmp_path, bytes_per_second=1000) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), {**failing, "ok-1.txt": "1", "ok-2.txt": "2"})
        emulator.add_fail_rule("retry-*", times=1)
        emulator.add_fail_rule("a-twice.dat", times=2)
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body())
        with counters_stay_consistent(emulator, task_id):
            first = emulator.wait_for_status(task_id, {TaskStatus.FAILED})
            assert (first["total_num"], first["successful_num"], first["failed_num"]) == (11, 2, 9)

            assert oms.start(task_id, migrate_failed_object=True).status_code == 200
            emulator.wait_for_status(task_id, {TaskStatus.RETRYING})
            wait_until(lambda: emulator.get_task(task_id)["successful_num"] >= 4)
            emulator.pause_task(task_id)
            paused = emulator.wait_for_status(task_id, {TaskStatus.PAUSED})
            assert 4 <= paused["successful_num"] < 11
            assert paused["failed_num"] == 1  # a-twice.dat

            # Failed-only again: what the paused retry had not migrated, i.e. a-twice.dat and the untried rest.
            assert oms.start(task_id, migrate_failed_object=True).status_code == 200
            emulator.wait_for_status(task_id, {TaskStatus.RETRYING, TaskStatus.SUCCEEDED, TaskStatus.FAILED})
            done = emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})

    assert done["status"] == TaskStatus.SUCCEEDED
    # Every object was copied exactly once over the three runs: nothing counted twice, nothing skipped.
    assert (done["total_num"], done["successful_num"], done["skipped_num"], done["failed_num"]) == (11, 11, 0, 0)
    assert done["complete_size"] == done["total_size"] == sum(len(content) for content in failing.values()) + 2
    assert done["real_size"] == done["total_size"]
    assert done["progress"] == 1.0
    assert set(failing) <= bucket_keys(emulator.data_dir / "dst-bucket")


def test_fail_rule_for_one_task_only(oms: OMSCaller, oms_emulator: OMSEmulator) -> None:
    # The rule needs the task's id: both tasks first fail on their missing source bucket, so that the rule is in
    # place before either of them copies anything.
    chosen, other = oms.create(task_body(dst="dst-one")), oms.create(task_body(dst="dst-two"))
    for task_id in (chosen, other):
        oms_emulator.wait_for_status(task_id, {TaskStatus.FAILED})
    oms_emulator.add_fail_rule("docs/*", task_id=str(chosen))
    write_objects(oms_emulator.bucket_path("src-bucket"), OBJECTS)
    for task_id in (chosen, other):
        assert oms.start(task_id).status_code == 200
    assert oms_emulator.wait_for_status(chosen, {TaskStatus.FAILED, TaskStatus.SUCCEEDED})["failed_num"] == 2
    assert oms_emulator.wait_for_status(other, {TaskStatus.FAILED, TaskStatus.SUCCEEDED})["failed_num"] == 0


def test_fail_patterns_of_the_constructor(tmp_path: Path) -> None:
    with OMSEmulator(tmp_path, fail_patterns=["*.txt", "*.bin"], fail_times=1) as emulator:
        write_objects(emulator.bucket_path("src-bucket"), OBJECTS)
        oms = OMSCaller(emulator.url)
        task_id = oms.create(task_body())
        assert emulator.wait_for_status(task_id, {TaskStatus.FAILED})["failed_num"] == 3
        assert oms.start(task_id, migrate_failed_object=True).status_code == 200
        assert emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})["status"] == 5


def test_stop_pauses_part_way_and_start_finishes(slow_oms: OMSCaller, slow_emulator: OMSEmulator) -> None:
    objects = {f"part-{index:02}.dat": "x" * index for index in range(1, 13)}
    write_objects(slow_emulator.bucket_path("src-bucket"), objects)
    task_id = slow_oms.create(task_body())
    wait_until(lambda: slow_emulator.get_task(task_id)["successful_num"] >= 2)
    running = slow_oms.show(task_id).json()
    assert running["status"] == TaskStatus.RUNNING
    assert 0 < running["progress"] < 1
    assert running["left_time"] > 0 and running["total_time"] > 0 and running["migrate_speed"] > 0

    assert slow_oms.stop(task_id).status_code == 200
    assert slow_oms.show(task_id).json()["status"] == TaskStatus.PAUSING
    paused = slow_emulator.wait_for_status(task_id, {TaskStatus.PAUSED})
    destination = slow_emulator.data_dir / "dst-bucket"
    copied = bucket_keys(destination)
    assert 2 <= paused["successful_num"] == len(copied) < len(objects)
    assert paused["total_num"] == len(objects)

    assert slow_oms.start(task_id).status_code == 200
    done = slow_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED, TaskStatus.FAILED})
    assert done["status"] == TaskStatus.SUCCEEDED
    assert bucket_keys(destination) == set(objects)
    assert done["skipped_num"] == len(copied)
    assert done["successful_num"] == len(objects) - len(copied)


def test_python_api_pause_wait_and_errors(slow_emulator: OMSEmulator, slow_oms: OMSCaller) -> None:
    write_objects(slow_emulator.bucket_path("src-bucket"), {f"{index}.txt": "x" for index in range(30)})
    task_id = slow_oms.create(task_body())
    slow_emulator.wait_for_status(task_id, {TaskStatus.RUNNING})
    with pytest.raises(TimeoutError, match="expected one of \\[5\\]"):
        slow_emulator.wait_for_status(task_id, {TaskStatus.SUCCEEDED}, timeout=0.05)
    slow_emulator.pause_task(task_id)
    assert slow_emulator.wait_for_status(task_id, {TaskStatus.PAUSED})["status"] == TaskStatus.PAUSED
    with pytest.raises(OMSEmulatorError) as raised:
        slow_emulator.pause_task(task_id)
    assert raised.value.error_code == "OMS.0066"
    with pytest.raises(OMSEmulatorError) as raised:
        slow_emulator.get_task(12345)
    assert (raised.value.status, raised.value.error_code) == (404, "OMS.1009")
    assert_error(slow_oms.show(12345), 404, "OMS.1009")
