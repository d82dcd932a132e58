"""A link from an Airflow task to the OMS console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

#: Huawei documents no address for one OMS task's page, nor for the task list (docs/operators.md, "Console link");
#: this is the region's OMS console, following the pattern every Huawei Cloud service console uses. A connection
#: can set its own template in extra ``console_url`` (fields: region, project_id, migration_task_id).
DEFAULT_CONSOLE_URL = "https://console.huaweicloud.com/oms/?region={region}"


def console_url(template: str | None, *, region: str | None, project_id: str, migration_task_id: str) -> str | None:
    """
    Return the console address for a task, or ``None`` when there is none to give (no region, no template).

    :param template: the connection's ``console_url`` extra, or ``None`` for the default.
    """
    if template is None and not region:
        return None
    try:
        return (template or DEFAULT_CONSOLE_URL).format(
            region=region or "", project_id=project_id, migration_task_id=migration_task_id
        )
    except (KeyError, IndexError, ValueError):
        return None


class OMSConsoleLink(BaseOperatorLink):
    """The OMS console of the task's region, shown as a button on the Airflow task."""

    name: ClassVar[str] = "OMS Console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the address pushed while the task ran, or ``""``."""
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value if isinstance(value, str) else ""

    @classmethod
    def persist(cls, context: Context, url: str | None) -> None:
        """
        Push the address to XCom (where the API server reads it) as soon as the task id is known.

        With no address an empty one is pushed: the task runner reads the key when the task ends, and a
        missing key would log an error.
        """
        context["ti"].xcom_push(key=cls().xcom_key, value=url or "")
