"""What the packaging tests read: the repository's pyproject.toml, and the package's own files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "airflow_provider_oms"
DISTRIBUTION = "airflow-provider-oms"
#: The extra of the developers' tools: never something the provider may need at run time.
DEV_EXTRA = "test"


def pyproject() -> dict[str, Any]:
    """The parsed pyproject.toml of the repository."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def requirements(*, extra: str | None = None) -> list[Requirement]:
    """The ``dependencies`` of pyproject.toml, or those of one extra."""
    project = pyproject()["project"]
    lines = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def runtime_extras() -> list[str]:
    """The extras a user may install (all but the developers' ``test``)."""
    return [name for name in pyproject()["project"].get("optional-dependencies", {}) if name != DEV_EXTRA]


def canonical_names(reqs: list[Requirement]) -> set[str]:
    return {canonicalize_name(req.name) for req in reqs}


def package_files() -> list[Path]:
    """Every file of the package that a wheel may ship (no bytecode caches)."""
    return sorted(path for path in PACKAGE_DIR.rglob("*") if path.is_file() and "__pycache__" not in path.parts)
