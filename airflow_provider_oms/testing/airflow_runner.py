"""
Run DAGs with a real Airflow in a throw-away AIRFLOW_HOME (SQLite), for tests and the demo.

Each DAG run is ``airflow dags test`` in a subprocess, so it goes through Airflow's own DAG parsing, template
rendering and task execution; connections are passed as ``AIRFLOW_CONN_*`` environment variables.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

_STATE_RE = re.compile(r"DagRun Finished: .*?state=(?P<state>[a-z_]+)")


@dataclass
class DagRunResult:
    """The outcome of one ``airflow dags test`` run."""

    returncode: int
    output: str = field(repr=False)
    state: str | None

    @property
    def succeeded(self) -> bool:
        """Whether the DAG run finished in state ``success``."""
        return self.returncode == 0 and self.state == "success"


class AirflowTestEnvironment:
    """
    A temporary Airflow installation: its own AIRFLOW_HOME, SQLite database and DAGs folder.

    :param home: an empty folder that becomes AIRFLOW_HOME.
    :param dags_folder: the folder with the DAG files to run.
    :param connections: connection id -> connection dict (``conn_type``, ``login``, ``password``, ``extra``).
    """

    def __init__(self, home: str | Path, dags_folder: str | Path, connections: Mapping[str, Mapping[str, Any]]):
        self.home = Path(home)
        self.dags_folder = Path(dags_folder)
        self.connections = dict(connections)
        self._migrated = False

    @property
    def env(self) -> dict[str, str]:
        """The environment every ``airflow`` command of this installation runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(conn))
        return env

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``airflow ARGS...`` in this installation and return the finished process (output captured)."""
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def migrate(self, timeout: float = 300) -> None:
        """Create the metadata database (once)."""
        if self._migrated:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        done = self.run("db", "migrate", timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        self._migrated = True

    def start_dags_test(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, *, logical_date: str | datetime | None = None
    ) -> subprocess.Popen[str]:
        """Start ``airflow dags test DAG_ID`` without waiting; its output (stdout + stderr) is a pipe."""
        self.migrate()
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "airflow", *self._dags_test_args(dag_id, conf, logical_date)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @staticmethod
    def result_of(returncode: int, output: str) -> DagRunResult:
        """Read the DAG run's final state from the output of ``airflow dags test``."""
        states = [m["state"] for m in _STATE_RE.finditer(output)]
        return DagRunResult(returncode=returncode, output=output, state=states[-1] if states else None)

    @staticmethod
    def _dags_test_args(
        dag_id: str, conf: Mapping[str, Any] | None, logical_date: str | datetime | None = None
    ) -> list[str]:
        args = ["dags", "test", dag_id]
        if logical_date is not None:
            args.append(logical_date.isoformat() if isinstance(logical_date, datetime) else logical_date)
        if conf is not None:
            args += ["--conf", json.dumps(dict(conf))]
        return args

    def dags_test(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        timeout: float = 300,
        *,
        logical_date: str | datetime | None = None,
    ) -> DagRunResult:
        """
        Run ``airflow dags test DAG_ID [LOGICAL_DATE]`` and return its outcome and output (stdout + stderr).

        :param dag_id: the DAG to run.
        :param conf: the DAG run's conf (becomes ``params`` overrides).
        :param timeout: seconds the run may take.
        :param logical_date: the run's logical date (a timezone-aware datetime or an ISO 8601 string); its data
            interval follows from the DAG's timetable. Default: now.
        """
        self.migrate()
        done = self.run(*self._dags_test_args(dag_id, conf, logical_date), timeout=timeout)
        return self.result_of(done.returncode, done.stdout + done.stderr)

    def xcom_value(self, dag_id: str, task_id: str, key: str = "return_value") -> Any:
        """Return the newest XCom value a task pushed, read from the metadata database (``None`` if none)."""
        with closing(sqlite3.connect(self.home / "airflow.db")) as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ? ORDER BY timestamp DESC LIMIT 1",
                (dag_id, task_id, key),
            ).fetchone()
        if row is None:
            return None
        value = row[0]
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def asset_events(self, dag_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Return the asset events a DAG's runs emitted, oldest first: ``(asset URI, event extra)`` pairs."""
        with closing(sqlite3.connect(self.home / "airflow.db")) as db:
            rows = db.execute(
                "SELECT asset.uri, asset_event.extra FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
                "WHERE asset_event.source_dag_id = ? ORDER BY asset_event.id",
                (dag_id,),
            ).fetchall()
        return [(uri, json.loads(extra) if isinstance(extra, (str, bytes)) else extra) for uri, extra in rows]
