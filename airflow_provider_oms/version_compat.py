"""The few places where Airflow 3.1 and 3.2+ differ, in one module (Airflow's own providers keep one too)."""

from __future__ import annotations

try:  # Airflow >= 3.2
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[assignment]

__all__ = ["conf"]
