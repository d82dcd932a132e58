"""The pure judging and reporting functions shared by the operator, the trigger and the sensor."""

from __future__ import annotations

import json

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.waiting import (
    SUMMARY_FIELDS,
    Outcome,
    can_retry_failed_objects,
    classify,
    failure_message,
    progress_line,
    result,
    run_totals,
    summarize,
)
from tests.helpers import DOCUMENTED_RESULT_KEYS

GIB = 1024**3
MIB = 1024**2

#: A task half way through, as show-task returns it (with fields the summary must drop).
RUNNING_TASK = {
    "id": 42,
    "name": "nightly-copy",
    "task_type": "prefix",
    "src_node": {"bucket": "src", "region": "cn-north-4", "object_key": ["data/"]},
    "dst_node": {"bucket": "dst", "region": "cn-north-4", "save_prefix": "in/"},
    "status": 2,
    "total_num": 200,
    "successful_num": 120,
    "failed_num": 2,
    "skipped_num": 30,
    "complete_size": 3 * GIB // 2,
    "total_size": 3 * GIB,
    "real_size": 3 * GIB // 2,
    "progress": 0.5,
    "migrate_speed": 10 * MIB,
    "start_time": 1_700_000_000_000,
    "total_time": 150_000,
    "left_time": 125_000,
    "is_query_over": True,
    "error_reason": None,
    "failed_object_record": None,
}

FAILED_TASK = {
    **RUNNING_TASK,
    "status": 4,
    "successful_num": 195,
    "failed_num": 2,
    "skipped_num": 3,
    "progress": 0.99,
    "left_time": 0,
    "error_reason": {"error_code": "TRF.0001", "error_msg": "2 objects failed to migrate."},
    "failed_object_record": {
        "result": True,
        "list_file_key": "oms/failed_object_lists/nightly-copy/1.txt",
        "error_code": "",
    },
}


# -- classify ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (1, Outcome.WAITING),
        (2, Outcome.WAITING),
        (3, Outcome.STUCK),
        (4, Outcome.FAILED),
        (5, Outcome.SUCCESS),
        (6, Outcome.WAITING),
        (7, Outcome.WAITING),
    ],
)
def test_classify_every_status_with_the_default_statuses(status, expected):
    assert classify({"status": status}) is expected
    # The enum member, and the code as a string (as some answers carry it), judge the same.
    assert classify({"status": TaskStatus(status)}) is expected
    assert classify({"status": str(status)}) is expected


def test_every_status_code_is_covered():
    assert sorted(int(s) for s in TaskStatus) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("task", [{}, {"status": None}, {"status": 0}, {"status": 8}, {"status": -1}])
def test_classify_unknown_status(task):
    assert classify(task) is Outcome.UNKNOWN


@pytest.mark.parametrize("garbage", ["running", "", "5.5", [5], {"code": 5}, object()])
def test_classify_garbage_status_is_unknown_not_an_error(garbage):
    assert classify({"status": garbage}) is Outcome.UNKNOWN


def test_classify_unknown_even_when_awaited():
    # An odd value that happens to be listed must not count as reached.
    assert classify({"status": 9}, target_statuses={9}) is Outcome.UNKNOWN


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (1, Outcome.WAITING),
        (2, Outcome.WAITING),
        (3, Outcome.SUCCESS),
        (4, Outcome.FAILED),
        (5, Outcome.STUCK),  # succeeded while a pause was awaited: it will never become paused
        (6, Outcome.WAITING),
        (7, Outcome.WAITING),  # pausing goes on to paused by itself
    ],
)
def test_classify_waiting_for_paused(status, expected):
    assert classify({"status": status}, target_statuses={TaskStatus.PAUSED}) is expected


def test_classify_several_targets_and_custom_failures():
    targets = [TaskStatus.PAUSED, TaskStatus.SUCCEEDED]
    assert classify({"status": 3}, targets) is Outcome.SUCCESS
    assert classify({"status": 5}, targets) is Outcome.SUCCESS
    assert classify({"status": 4}, targets) is Outcome.FAILED
    # Paused declared a failure, and failed not one: failed no longer moves on, so it is stuck.
    assert classify({"status": 3}, failure_statuses=[3]) is Outcome.FAILED
    assert classify({"status": 4}, failure_statuses=[3]) is Outcome.STUCK
    # A status both awaited and a failure counts as reached.
    assert classify({"status": 4}, target_statuses=[4], failure_statuses=[4]) is Outcome.SUCCESS
    # Plain ints and tuples work as well as enum members and sets.
    assert classify({"status": 2}, (2,), ()) is Outcome.SUCCESS


def test_outcome_values_are_the_trigger_event_statuses():
    assert {o.value for o in Outcome} == {"waiting", "success", "failed", "stuck", "unknown"}
    assert json.dumps(Outcome.SUCCESS) == '"success"'


# -- summarize -----------------------------------------------------------------------------------


def test_summarize_keeps_exactly_the_summary_fields():
    summary = summarize(RUNNING_TASK)
    assert tuple(summary) == SUMMARY_FIELDS
    assert all(summary[key] == RUNNING_TASK[key] for key in SUMMARY_FIELDS)
    for dropped in ("id", "name", "src_node", "dst_node", "real_size", "is_query_over", "task_type"):
        assert dropped not in summary
    json.dumps(summary)


def test_summarize_fills_missing_fields_with_none_and_is_idempotent():
    summary = summarize({"status": 1})
    assert tuple(summary) == SUMMARY_FIELDS
    assert summary["status"] == 1
    assert all(summary[key] is None for key in SUMMARY_FIELDS if key != "status")
    assert summarize(summarize(FAILED_TASK)) == summarize(FAILED_TASK)


def test_summary_fields_cover_progress_and_outcome():
    assert set(SUMMARY_FIELDS) >= {"status", "error_reason", "failed_object_record", "failed_num", "progress"}
    assert len(set(SUMMARY_FIELDS)) == len(SUMMARY_FIELDS)


# -- can_retry_failed_objects --------------------------------------------------------------------


def test_can_retry_a_failed_task_with_a_failed_object_list():
    assert can_retry_failed_objects(FAILED_TASK) is True
    assert can_retry_failed_objects({**FAILED_TASK, "status": "4", "failed_num": "2"}) is True
    assert can_retry_failed_objects(summarize(FAILED_TASK)) is True


@pytest.mark.parametrize(
    "changes",
    [
        {"status": 5},
        {"status": 3},
        {"status": 2},
        {"status": None},
        {"failed_num": 0},
        {"failed_num": None},
        {"failed_object_record": None},
        {"failed_object_record": {}},
        {"failed_object_record": {"result": False, "list_file_key": "x", "error_code": "TRF.0004"}},
    ],
)
def test_cannot_retry_failed_objects(changes):
    assert can_retry_failed_objects({**FAILED_TASK, **changes}) is False


def test_cannot_retry_an_empty_task():
    assert can_retry_failed_objects({}) is False


# -- progress_line -------------------------------------------------------------------------------


def test_progress_line_of_a_running_task():
    line = progress_line("42", RUNNING_TASK)
    assert line == (
        "OMS task 42 running: 50.0% | objects 150/200 (failed 2) | 1.5 GiB of 3.0 GiB | 10.0 MiB/s | ~2m05s left"
    )


@pytest.mark.parametrize(
    ("complete", "total", "speed", "left_ms", "expected"),
    [
        (0, 512, 0, 45_000, "0 B of 512 B | 0 B/s | ~45s left"),
        (1023, 1024, 1000, 59_999, "1023 B of 1.0 KiB | 1000 B/s | ~59s left"),
        (1536, 10 * 1024, 2048, 3_600_000 + 60_000, "1.5 KiB of 10.0 KiB | 2.0 KiB/s | ~1h01m left"),
        (2 * 1024**4, 5 * 1024**5, GIB, 0, "2.0 TiB of 5120.0 TiB | 1.0 GiB/s"),  # no estimate: no "~0s left"
        (0, 512, 0, 999, "0 B of 512 B | 0 B/s"),
    ],
)
def test_progress_line_units(complete, total, speed, left_ms, expected):
    task = {**RUNNING_TASK, "complete_size": complete, "total_size": total, "migrate_speed": speed}
    task["left_time"] = left_ms
    assert progress_line("7", task).endswith(expected)


def test_progress_line_of_an_empty_task_does_not_fail():
    line = progress_line("9", {})
    assert line.startswith("OMS task 9 unknown (None): 0.0% | objects 0/0 (failed 0)")
    assert "0 B of 0 B" in line


def test_progress_line_names_the_status():
    assert " succeeded: 100.0% " in progress_line("1", {**RUNNING_TASK, "status": 5, "progress": 1})
    assert " pausing: " in progress_line("1", {**RUNNING_TASK, "status": 7})


# -- failure_message -----------------------------------------------------------------------------


def test_failure_message_has_reason_count_and_failed_object_list():
    assert failure_message("42", FAILED_TASK) == (
        "OMS migration task 42 failed: TRF.0001 2 objects failed to migrate.; 2 objects failed; "
        "the failed-object list is 'oms/failed_object_lists/nightly-copy/1.txt' in the destination bucket"
    )


def test_failure_message_without_details():
    assert failure_message("42", {"status": 4}) == "OMS migration task 42 failed"
    message = failure_message("42", {"status": 4, "error_reason": {"error_code": "TRF.0015", "error_msg": ""}})
    assert message == "OMS migration task 42 failed: TRF.0015"
    message = failure_message("42", {"status": 4, "error_reason": {"error_msg": "Source bucket gone."}})
    assert message.startswith("OMS migration task 42 failed:")
    assert message.endswith(" Source bucket gone.")
    message = failure_message("42", {"status": 4, "failed_num": 3, "failed_object_record": {"result": False}})
    assert message == "OMS migration task 42 failed; 3 objects failed"


# -- result --------------------------------------------------------------------------------------


def test_result_has_the_documented_keys_and_is_json_serializable():
    value = result("42", FAILED_TASK, restarts=2, elapsed_seconds=12.345678)
    assert set(value) == DOCUMENTED_RESULT_KEYS
    assert json.loads(json.dumps(value)) == value
    assert value["migration_task_id"] == "42"
    assert value["status"] == 4
    assert value["status_name"] == "failed"
    assert value["restarts"] == 2
    assert value["elapsed_seconds"] == 12.346
    assert value["failed_num"] == 2
    assert value["error_reason"]["error_code"] == "TRF.0001"
    assert value["failed_object_record"]["list_file_key"] == "oms/failed_object_lists/nightly-copy/1.txt"
    for dropped in ("src_node", "dst_node", "name"):
        assert dropped not in value


def test_result_normalizes_the_status():
    value = result("1", {"status": "5"}, restarts=0, elapsed_seconds=0)
    assert value["status"] == 5
    assert type(value["status"]) is int  # not the IntEnum, not the string
    assert value["status_name"] == "succeeded"
    value = result("1", {}, restarts=0, elapsed_seconds=0)
    assert value["status"] is None
    assert value["status_name"].startswith("unknown")
    json.dumps(value)


def _attempt(kind: str, total: int, landed: int, skipped: int, failed: int) -> dict:
    counters = {"total_num": total, "successful_num": landed, "skipped_num": skipped, "failed_num": failed}
    return {"kind": kind, **counters, "complete_size": 10 * (landed + skipped), "total_size": 10 * total}


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        pytest.param([_attempt("whole_task", 5, 3, 1, 1)], (5, 3, 1, 1), id="one attempt: OMS's own figures"),
        pytest.param(
            [_attempt("whole_task", 5, 2, 1, 2), _attempt("failed_objects", 5, 4, 1, 0)],
            (5, 4, 1, 0),
            id="failed objects, counters carried on",
        ),
        pytest.param(
            [_attempt("whole_task", 5, 2, 1, 2), _attempt("failed_objects", 2, 1, 1, 0)],
            (5, 3, 2, 0),
            id="failed objects, counted on their own",
        ),
        pytest.param(
            [_attempt("whole_task", 3, 2, 0, 1), _attempt("whole_task", 3, 1, 2, 0)],
            (3, 3, 0, 0),
            id="the whole task again: this run's landings are not skipped",
        ),
        pytest.param(
            [
                _attempt("whole_task", 6, 2, 1, 3),
                _attempt("failed_objects", 6, 3, 1, 2),
                _attempt("whole_task", 6, 2, 4, 0),
            ],
            (6, 5, 1, 0),
            id="failed objects, then the whole task",
        ),
    ],
)
def test_run_totals_count_each_object_once(attempts, expected):
    totals = run_totals(attempts)
    assert (totals["total_num"], totals["successful_num"], totals["skipped_num"], totals["failed_num"]) == expected
    assert totals["successful_num"] + totals["skipped_num"] + totals["failed_num"] == totals["total_num"]
