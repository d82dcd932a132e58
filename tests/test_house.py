"""
The shape of the package that newcomers and DAG files rely on (issue 14), checked so that it stays.

* no module of the provider over about 600 lines, none of the emulator's over about 700;
* a DAG file importing every operator and sensor does not import the hook, the HTTP client, the waiting logic,
  requests, httpx, tenacity or the emulator: they are imported where first used;
* the connection translation and the request bodies import nothing of Airflow.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "airflow_provider_oms"
#: "About 600" and "about 700" lines: the limits with a little room, so that a docstring does not break the build.
PROVIDER_MAX_LINES = 625
EMULATOR_MAX_LINES = 725

DAG_FILE_IMPORTS = (
    "airflow_provider_oms.operators.oms",
    "airflow_provider_oms.operators.lifecycle",
    "airflow_provider_oms.operators.housekeeping",
    "airflow_provider_oms.sensors.oms",
)
LAZY = (
    "airflow_provider_oms.hooks",
    "airflow_provider_oms.client",
    "airflow_provider_oms.signer",
    "airflow_provider_oms.connections",
    "airflow_provider_oms.source_providers",
    "airflow.providers.amazon",
    "airflow.providers.microsoft",
    "airflow.providers.google",
    "airflow_provider_oms.waiting",
    "airflow_provider_oms.validation",
    "airflow_provider_oms.triggers",
    "airflow_provider_oms.testing",
    "requests",
    "httpx",
    "tenacity",
)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_is_too_long_to_read(path):
    limit = EMULATOR_MAX_LINES if "testing" in path.relative_to(PACKAGE).parts else PROVIDER_MAX_LINES
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= limit, f"{path.relative_to(PACKAGE)} has {lines} lines: split it along its seams"


def test_a_dag_file_importing_every_operator_and_sensor_pays_for_none_of_the_heavy_modules():
    script = (
        "import json, sys\n"
        "import airflow.sdk\n"
        "before = set(sys.modules)\n"
        + "".join(f"import {name}\n" for name in DAG_FILE_IMPORTS)
        + "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    new = json.loads(done.stdout.strip().splitlines()[-1])
    assert "airflow_provider_oms.operators.oms" in new, new  # the probe saw the import it measures
    heavy = [name for name in new if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY)]
    # airflow.sdk may already have loaded requests or httpx; what matters is that these modules did not.
    assert heavy == [], f"imported at module level by a DAG file's imports: {heavy}"


@pytest.mark.parametrize(
    "module", ["connections.py", "source_providers.py", "bodies.py", "signer.py", "client.py", "waiting.py"]
)
def test_translation_and_request_modules_import_nothing_of_airflow(module):
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    imported = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert imported, "no import found: the test reads the wrong file"
    assert [name for name in imported if name.split(".")[0] == "airflow"] == []
