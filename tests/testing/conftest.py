# The `oms_emulator` fixture comes from airflow_provider_oms.testing.pytest_plugin, which the root conftest
# enables with `pytest_plugins`.
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_oms.testing import OMSEmulator
from tests.testing.helpers import OMSCaller


@pytest.fixture
def oms(oms_emulator: OMSEmulator) -> Iterator[OMSCaller]:
    """Signed requests to the `oms_emulator` fixture."""
    caller = OMSCaller(oms_emulator.url)
    yield caller
    caller.close()


@pytest.fixture
def slow_emulator(tmp_path: Path) -> Iterator[OMSEmulator]:
    """
    An emulator whose objects take 0.1 s each, so that running tasks can be observed; a stopped task stays
    pausing (7) for a second, so that a test sees that status even on a busy machine.
    """
    with OMSEmulator(tmp_path / "slow-data", object_delay=0.1, pausing_delay=1.0) as emulator:
        yield emulator


@pytest.fixture
def slow_oms(slow_emulator: OMSEmulator) -> Iterator[OMSCaller]:
    """Signed requests to the `slow_emulator` fixture."""
    caller = OMSCaller(slow_emulator.url)
    yield caller
    caller.close()
