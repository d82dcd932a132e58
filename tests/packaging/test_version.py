"""The version is written once, as ``airflow_provider_oms.__version__``; everything else reads it."""

from __future__ import annotations

import ast
import importlib.metadata
import re

from packaging.version import Version

import airflow_provider_oms
from airflow_provider_oms.get_provider_info import get_provider_info
from tests.packaging.helpers import DISTRIBUTION, PACKAGE_DIR, ROOT, package_files, pyproject

VERSION = airflow_provider_oms.__version__


def test_version_is_a_plain_pep440_string_setuptools_can_read_without_importing():
    # setuptools' `attr:` reads a literal assignment statically (AST); anything else would import the package,
    # and with it Airflow, at build time.
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text())
    assigned = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets)
    ]
    assert len(assigned) == 1
    assert isinstance(assigned[0], ast.Constant)
    assert assigned[0].value == VERSION
    assert str(Version(VERSION)) == VERSION


def test_pyproject_reads_the_version_from_the_package():
    config = pyproject()
    assert "version" not in config["project"]
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "airflow_provider_oms.__version__"}


def test_installed_metadata_has_the_package_version():
    # Fails after a version bump until the package is installed again (`pip install -e '.[test]'`).
    assert importlib.metadata.version(DISTRIBUTION) == VERSION


def test_provider_info_reports_the_package_version():
    info = get_provider_info()
    assert info["package-name"] == DISTRIBUTION
    assert info["versions"][0] == VERSION


def test_version_number_is_written_nowhere_else():
    literal = re.compile(rf"(?<![\w.]){re.escape(VERSION)}(?![\w.])")
    found = []
    for path in [ROOT / "pyproject.toml", *package_files()]:
        if path == PACKAGE_DIR / "__init__.py":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}" for m in literal.finditer(text)]
    assert found == [], f"{VERSION} is written outside airflow_provider_oms/__init__.py; use __version__"
