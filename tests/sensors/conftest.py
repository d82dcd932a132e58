from __future__ import annotations

import pytest

from airflow_provider_oms.constants import TaskStatus
from tests.helpers import create_sample_task


@pytest.fixture
def failed_task(fast):
    """A sample task of three objects whose first one fails: (emulator, task_id), the task failed."""
    emulator, hook = fast
    emulator.add_fail_rule("data/f0.txt")
    task_id = create_sample_task(emulator, hook, files=3)
    emulator.wait_for_status(task_id, {TaskStatus.FAILED}, timeout=20)
    return emulator, task_id
