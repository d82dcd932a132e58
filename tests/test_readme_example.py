"""The README's main example is the nightly example DAG, verbatim: the file the tests run is the one users read."""

from __future__ import annotations

import json
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


def test_the_extra_shown_in_the_lineage_docs_has_the_keys_the_operator_emits():
    from airflow_provider_oms.lineage import figures
    from airflow_provider_oms.waiting import FAILED_OBJECTS, WHOLE_TASK, result

    text = (ROOT / "docs" / "lineage.md").read_text()
    shown = json.loads(re.search(r"^```json\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL).group(1))
    task = {"status": 5, "total_num": 3, "successful_num": 3, "failed_num": 0, "skipped_num": 0}
    emitted = figures(result("1", task, restarts=1, elapsed_seconds=1.0, attempts=[{"kind": WHOLE_TASK}]))
    assert set(shown) == set(emitted)
    assert {attempt["kind"] for attempt in shown["attempts"]} <= {WHOLE_TASK, FAILED_OBJECTS}
    assert set(shown["attempts"][0]) == set(emitted["attempts"][0])
