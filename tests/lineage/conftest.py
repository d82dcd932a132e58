"""
The lineage tests run twice: in the main venv without the OpenLineage provider, and in .venv-openlineage
(``make test-openlineage``) with it, where OMS_REQUIRE_OPENLINEAGE=1 turns a missing provider into a failure.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None


def require_openlineage() -> None:
    """Skip a test that needs the OpenLineage provider where it is not installed (fail where it must be)."""
    if HAS_OPENLINEAGE:
        return
    if os.environ.get("OMS_REQUIRE_OPENLINEAGE") == "1":
        pytest.fail("OMS_REQUIRE_OPENLINEAGE=1 but apache-airflow-providers-openlineage is not installed")
    pytest.skip("needs apache-airflow-providers-openlineage (make test-openlineage)")


@pytest.fixture
def openlineage() -> None:
    require_openlineage()
