"""
The lineage tests run twice: in the main venv without the OpenLineage provider, and in .venv-distributed
(``make test-openlineage``) with it, where OMS_REQUIRE_OPENLINEAGE=1 turns a missing provider into a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None


def require_openlineage() -> None:
    """Skip a test that needs the OpenLineage provider where it is not installed (fail where it must be)."""
    if HAS_OPENLINEAGE:
        return
    if os.environ.get("OMS_REQUIRE_OPENLINEAGE") == "1":
        pytest.fail("OMS_REQUIRE_OPENLINEAGE=1 but apache-airflow-providers-openlineage is not installed")
    pytest.skip("needs apache-airflow-providers-openlineage (make test-openlineage)")


@pytest.fixture
def openlineage() -> None:
    require_openlineage()


#: OpenLineage's BaseFacet and RunFacet, which a facet schema refers to by URL; restated here (no network).
OPENLINEAGE_SPEC = Path(__file__).with_name("openlineage_run_facet_2-0-2.json")


def check_oms_migration_facet(facet: dict[str, Any]) -> None:
    """
    Validate an emitted ``oms_migration`` facet (its JSON) against the schema the package ships, found through
    the facet's own ``_schemaURL``; and check that the schema names every field the facet has.
    """
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    import airflow_provider_oms

    url = urlsplit(facet["_schemaURL"])
    assert url.scheme == "https" and url.netloc and url.fragment == "/$defs/OMSMigrationRunFacet", url
    assert urlsplit(facet["_producer"]).scheme == "https", facet["_producer"]
    assert url.path.startswith(urlsplit(facet["_producer"]).path), "the schema is named under its producer"
    # The URL names the file by its path in the package: the file the wheel ships.
    package_path = url.path.split("/airflow_provider_oms/", 1)[1]
    schema = json.loads((Path(airflow_provider_oms.__file__).parent / package_path).read_text())
    spec = json.loads(OPENLINEAGE_SPEC.read_text())
    registry = Registry().with_resource(spec["$id"], Resource.from_contents(spec))
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema, registry=registry).validate({"oms_migration": facet})
    declared = schema["$defs"]["OMSMigrationRunFacet"]["allOf"][1]["properties"]
    assert set(facet) - {"_producer", "_schemaURL"} <= set(declared), "a facet field the schema does not describe"
