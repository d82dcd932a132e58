"""The README's main example is the nightly example DAG, verbatim: the file the tests run is the one users read."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_oms.operators.oms import RECURRING_RECIPE_DOCS

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_shows_the_nightly_example_dag_verbatim():
    example = (ROOT / "dags" / "example_oms_nightly_migration.py").read_text()
    assert example in python_blocks((ROOT / "README.md").read_text())


def test_the_section_a_refused_start_names_exists_and_shows_the_nightly_example():
    document, section = RECURRING_RECIPE_DOCS.split(", ")
    text = (ROOT / document).read_text()
    body = text.split(f"### {section.strip(chr(39))}\n", 1)[1].split("\n## ", 1)[0]
    assert "CreateMigrationTaskOperator" in body and "migrate_since" in body
    assert "example_oms_nightly_migration.py" in body
