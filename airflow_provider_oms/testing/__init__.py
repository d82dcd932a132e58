"""
A local Huawei Cloud OMS emulator for tests: real HTTP, real signatures, real file copies between folders.

Start it from Python (:class:`OMSEmulator`), from pytest (the ``oms_emulator`` fixture of
``airflow_provider_oms.testing.pytest_plugin``) or from a shell
(``python -m airflow_provider_oms.testing.emulator --port 0 --data-dir DIR``). Nothing here imports Airflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_oms.testing.emulator import OMSEmulator
    from airflow_provider_oms.testing.server import RequestRecord
    from airflow_provider_oms.testing.store import OMSEmulatorError

#: The emulator's default credentials and project: fake values, accepted by the emulator only.
EMULATOR_AK = "EMULATORAK0000000001"
EMULATOR_SK = "EMULATORSK000000000000000000000000000001"
EMULATOR_PROJECT_ID = "0123456789abcdef0123456789abcdef"
#: The emulator's default IAM user, which can get a token from its ``POST /v3/auth/tokens``: fake values too.
EMULATOR_IAM_DOMAIN = "emulator-domain"
EMULATOR_IAM_USER = "emulator-user"
EMULATOR_IAM_PASSWORD = "Emulator-Password-0001"  # noqa: S105 - a fake password, accepted by the emulator only

__all__ = [
    "EMULATOR_AK",
    "EMULATOR_IAM_DOMAIN",
    "EMULATOR_IAM_PASSWORD",
    "EMULATOR_IAM_USER",
    "EMULATOR_PROJECT_ID",
    "EMULATOR_SK",
    "OMSEmulator",
    "OMSEmulatorError",
    "RequestRecord",
]

# Imported on first use: `python -m airflow_provider_oms.testing.emulator` imports this package first, and an
# eager import of the emulator module here would load it twice (runpy warns about exactly that).
_LAZY = {"OMSEmulator": "emulator", "RequestRecord": "server", "OMSEmulatorError": "store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
