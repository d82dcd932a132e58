"""The few places where Airflow 3.1 and 3.2+ differ, in one module (Airflow's own providers keep one too)."""

from __future__ import annotations

from airflow import __version__ as _airflow_version

#: Airflow 3.3 starts a task in the triggerer (``start_from_trigger``) and renders its trigger kwargs; 3.1 and 3.2
#: ignore ``start_from_trigger``. (Major and minor only: ``packaging`` is not a declared dependency.)
AIRFLOW_V_3_3_PLUS = tuple(int(part) for part in _airflow_version.split(".")[:2]) >= (3, 3)

try:  # Airflow >= 3.2
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[assignment]

try:  # Airflow >= 3.2 (importing it from airflow.exceptions warns on 3.3)
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1: its task runner catches the one in airflow.exceptions
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

__all__ = ["AIRFLOW_V_3_3_PLUS", "AirflowFailException", "conf"]
