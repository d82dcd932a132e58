"""
The Python in README, CONTRIBUTING and docs/ cannot rot: every block compiles and its imports import, and the
complete project in docs/testing.md (its blocks marked ``<!-- docs-test-file: PATH -->``) is written out as those
files and run with pytest, as a user would run it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test-file: (?P<file>\S+) -->\n)?```python\n(?P<code>.*?)^```", re.M | re.S)


def python_blocks(document: Path) -> list[tuple[str | None, str]]:
    """The document's ``python`` blocks: (the file a marker names or None, the code)."""
    return [(m["file"], m["code"]) for m in BLOCK.finditer(document.read_text())]


BLOCKS = [
    pytest.param(code, id=f"{document.relative_to(ROOT).as_posix()}-{number}")
    for document in DOCUMENTS
    for number, (_, code) in enumerate(python_blocks(document), start=1)
]


def test_the_docs_have_python_blocks_and_the_testing_guide_marks_its_files() -> None:
    assert len(BLOCKS) >= 15, len(BLOCKS)
    files = [name for name, _ in python_blocks(ROOT / "docs" / "testing.md") if name]
    assert files == ["dags/my_nightly_migration.py", "tests/conftest.py", "tests/test_my_nightly_migration.py"]


@pytest.mark.parametrize("code", BLOCKS)
def test_every_python_block_compiles_and_its_imports_import(code: str) -> None:
    tree = ast.parse(code)  # a SyntaxError names the line
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), "<docs>", "exec"), {})  # noqa: S102 - our own docs


@pytest.mark.e2e
def test_the_testing_guide_project_passes_as_written(tmp_path: Path) -> None:
    for name, code in python_blocks(ROOT / "docs" / "testing.md"):
        if name:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "2 passed" in output, output[-3000:]
