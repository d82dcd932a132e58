"""
Figures that add up: across the restarts of one run (failed objects only, or the whole task on a retry), the
result carries each attempt's own figures and totals that count each object once. Against the emulator over HTTP.
"""

from __future__ import annotations

import pytest

from airflow_provider_oms.constants import TaskStatus
from airflow_provider_oms.exceptions import OMSMigrationError
from airflow_provider_oms.operators.lifecycle import CreateMigrationTaskOperator
from tests.helpers import DEFERRABLE_MODES, files_under, paused_sample_task, start_operator
from tests.operators.deferral import retry_context, run_operator

KEYS = [f"data/{n}.txt" for n in range(3)]
DEFINITION = {
    "task_type": "prefix",
    "src_node": {"region": "local", "bucket": "src", "cloud_type": "AWS", "object_key": ["data/"]},
    "dst_node": {"region": "local", "bucket": "dst", "save_prefix": "in/"},
}


def counts(figures: dict) -> tuple[int, int, int, int]:
    return figures["total_num"], figures["successful_num"], figures["skipped_num"], figures["failed_num"]


@DEFERRABLE_MODES
def test_a_failed_objects_restart_adds_up_to_what_landed(make_emulator, deferrable):
    emulator, hook = make_emulator(task_start_delay=0.2)
    task_id = paused_sample_task(emulator, hook, files=3)
    emulator.add_fail_rule("data/f[12].txt", times=1)  # two of three objects fail once

    result = run_operator(start_operator(task_id, deferrable=deferrable, retry_failed_objects=1))

    landed = files_under(emulator.bucket_path("dst") / "in")
    assert len(landed) == 3
    assert counts(result) == (3, 3, 0, 0), "the run's totals: every object landed, counted once"
    first, restart = result["attempts"]
    assert (first["kind"], counts(first), first["status_name"]) == ("whole_task", (3, 1, 0, 2), "failed")
    assert restart["kind"] == "failed_objects" and restart["status_name"] == "succeeded"
    assert result["restarts"] == 1


def test_a_retry_that_runs_the_whole_task_again_does_not_count_its_own_landings_as_skipped(emulator_with_source):
    """
    The night of the issue: the first try landed 2 of 3 objects and failed; its retry ran the whole task again,
    which OMS counts as 1 landed and 2 skipped. The night landed 3 and skipped none.
    """
    emulator = emulator_with_source(KEYS, task_start_delay=0.2)
    emulator.add_fail_rule("data/2.txt", times=1)

    def create() -> CreateMigrationTaskOperator:
        return CreateMigrationTaskOperator(
            task_id="create", task_definition=DEFINITION, source_conn_id="src", wait_for_completion=True,
            poll_interval=1, retries=1,
        )  # fmt: skip

    with pytest.raises(OMSMigrationError, match="1 objects failed"):
        create().execute(retry_context(try_number=1, max_tries=1))
    result = create().execute(retry_context(try_number=2, max_tries=1))

    assert result["status"] == TaskStatus.SUCCEEDED
    assert len(files_under(emulator.bucket_path("dst") / "in")) == 3
    assert counts(result) == (3, 3, 0, 0)
    earlier, again = result["attempts"]
    assert counts(earlier) == (3, 2, 0, 1)  # what the first try left, as read before the retry's start
    assert counts(again) == (3, 1, 2, 0)  # OMS's own figures for the whole run again
    assert emulator.applied_creates == 1
