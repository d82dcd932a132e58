"""The few places where Airflow 3.1 and 3.2+ differ, in one module (Airflow's own providers keep one too)."""

from __future__ import annotations

try:  # Airflow >= 3.2
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[assignment]

try:  # Airflow >= 3.2 (importing it from airflow.exceptions warns on 3.3)
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1: its task runner catches the one in airflow.exceptions
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

__all__ = ["AirflowFailException", "conf"]
