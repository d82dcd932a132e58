"""
Build the wheel as a user gets it, then install it in a fresh venv and ask Airflow for its providers.

The venv install downloads Airflow and its dependencies (about a minute where pip has no cache; the same versions
as the running environment, pinned by a constraints file, so the test does not drift with new releases).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from airflow_provider_oms import __version__
from tests.packaging.helpers import (
    DEV_EXTRA,
    DISTRIBUTION,
    PACKAGE_DIR,
    ROOT,
    canonical_names,
    package_files,
    pyproject,
    requirements,
)

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DIST_INFO = f"airflow_provider_oms-{__version__}.dist-info"
#: The package's modules that need an extra or a host and cannot be imported with the plain install.
NEEDS_MORE = {"airflow_provider_oms.lineage_facets", "airflow_provider_oms.testing.pytest_plugin"}


def run(args: list[str | Path], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command, failing the test with its output if it fails."""
    done = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its venv and Airflow settings."""
    drop = ("AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel built from a copy of the sources (the build leaves build/ and *.egg-info behind it)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE_DIR, source / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__"))
    out = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, source], timeout=300)
    (built,) = out.glob("*.whl")
    yield built
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        return email.parser.Parser().parsestr(archive.read(f"{DIST_INFO}/METADATA").decode())


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed by pip, as a user would, with its dependencies."""
    base = tmp_path_factory.mktemp("venv")
    constraints = base / "constraints.txt"
    pins = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name != DISTRIBUTION:
            pins.setdefault(name, f"{name}=={dist.version}")
    constraints.write_text("\n".join(sorted(pins.values())) + "\n")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", venv], timeout=120)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", "-c", constraints, wheel], timeout=900, env=clean_env())
    yield venv
    shutil.rmtree(base, ignore_errors=True)


def test_wheel_ships_license_and_py_typed(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read(f"{DIST_INFO}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        assert archive.read("airflow_provider_oms/py.typed") == b""
    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    expected = {path.relative_to(ROOT).as_posix() for path in package_files()}
    assert expected <= names
    assert not [name for name in names if name.startswith("tests/") or "__pycache__" in name]


def test_wheel_metadata(wheel: Path, metadata: email.message.Message):
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier")
    assert "Development Status :: 4 - Beta" in classifiers
    assert "Typing :: Typed" in classifiers
    assert "Framework :: Apache Airflow :: Provider" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it
    listed = [c.rpartition(" :: ")[2] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]
    assert listed == PYTHONS
    requires_python = SpecifierSet(metadata["Requires-Python"])
    assert all(version in requires_python for version in PYTHONS)
    assert "3.9" not in requires_python
    # Requires-Dist: pyproject's dependencies, and every extra's behind its marker.
    runtime = [Requirement(line) for line in metadata.get_all("Requires-Dist") if "extra ==" not in line]
    assert {str(req) for req in runtime} == {str(req) for req in requirements()}
    assert set(metadata.get_all("Provides-Extra")) == set(pyproject()["project"]["optional-dependencies"])
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(f"{DIST_INFO}/entry_points.txt").decode()
    assert "[apache_airflow_provider]" in entry_points
    assert "airflow_provider_oms.get_provider_info:get_provider_info" in entry_points


def test_airflow_lists_the_installed_provider(venv: Path, tmp_path: Path):
    env = clean_env(AIRFLOW_HOME=str(tmp_path / "airflow-home"))
    command = [venv / "bin" / "airflow", "providers", "list", "--output", "json"]
    out = run(command, timeout=300, env=env, cwd=tmp_path)
    providers = {entry["package_name"]: entry["version"] for entry in json.loads(out)}
    assert providers.get(DISTRIBUTION) == __version__, providers


def test_every_module_imports_with_the_declared_dependencies_only(venv: Path, tmp_path: Path):
    code = (
        "import importlib, pkgutil, airflow_provider_oms\n"
        "import airflow_provider_oms.operators.oms\n"
        "skip = set(__import__('sys').argv[1:])\n"
        "for module in pkgutil.walk_packages(airflow_provider_oms.__path__, 'airflow_provider_oms.'):\n"
        "    if module.name not in skip:\n"
        "        importlib.import_module(module.name)\n"
        "print(airflow_provider_oms.__file__)\n"
    )
    env = clean_env(AIRFLOW_HOME=str(tmp_path / "airflow-home"))
    # Run from tmp_path: `python -c` puts the working directory, here the source tree, first on sys.path.
    out = run([venv / "bin" / "python", "-c", code, *sorted(NEEDS_MORE)], timeout=300, env=env, cwd=tmp_path)
    assert Path(out.strip()).is_relative_to(venv)  # the installed copy, not the source tree


def test_install_brings_no_developer_tool(venv: Path):
    out = run([venv / "bin" / "python", "-m", "pip", "list", "--format", "json"], timeout=120, env=clean_env())
    installed = {canonicalize_name(entry["name"]) for entry in json.loads(out)}
    assert DISTRIBUTION in installed
    assert canonical_names(requirements(extra=DEV_EXTRA)) & installed == set()


def test_type_checkers_read_the_installed_package(venv: Path, tmp_path: Path):
    # Without py.typed mypy refuses to analyze an installed package ("missing library stubs or py.typed marker").
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    (tmp_path / "use.py").write_text("from airflow_provider_oms import __version__\n\nnumber: int = __version__\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            ".mypy_cache",
            "--python-executable",
            str(venv / "bin" / "python"),
            "use.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
        check=False,
    )
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in done.stdout, (
        done.stdout + done.stderr
    )
