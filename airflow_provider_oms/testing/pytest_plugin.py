"""
Pytest fixtures for testing DAGs and hooks against the local OMS emulator.

Enable them in the root ``conftest.py``: ``pytest_plugins = ["airflow_provider_oms.testing.pytest_plugin"]``.
docs/testing.md shows a complete test of a DAG with them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

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


@pytest.fixture
def oms_emulator_factory(tmp_path: Path) -> Iterator[Callable[..., OMSEmulator]]:
    """
    Yield a function that starts an :class:`OMSEmulator` with options; each one is stopped after the test.

    ``oms_emulator_factory(object_delay=0.5, fail_patterns=["*.bad"])`` takes :class:`OMSEmulator`'s keyword
    arguments; its buckets are folders under ``tmp_path / "oms-data-N"``.
    """
    numbers = itertools.count(1)
    with ExitStack() as stack:

        def start(**options: Any) -> OMSEmulator:
            return stack.enter_context(OMSEmulator(tmp_path / f"oms-data-{next(numbers)}", **options))

        yield start
