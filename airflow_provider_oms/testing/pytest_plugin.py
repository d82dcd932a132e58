"""
Pytest fixtures for testing DAGs and hooks against the local OMS emulator.

Enable them in the root ``conftest.py``: ``pytest_plugins = ["airflow_provider_oms.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_oms.testing.emulator import OMSEmulator


@pytest.fixture
def oms_emulator(tmp_path: Path) -> Iterator[OMSEmulator]:
    """
    Yield a started :class:`OMSEmulator` on a free port of 127.0.0.1; stop it after the test.

    Its buckets are folders under ``tmp_path / "oms-data"``; create them with ``oms_emulator.bucket_path()``.
    """
    with OMSEmulator(tmp_path / "oms-data") as emulator:
        yield emulator
