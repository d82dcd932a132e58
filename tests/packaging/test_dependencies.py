"""Every third-party distribution the package imports is declared in pyproject.toml, with a lower bound."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import sys
from collections import defaultdict

from packaging.utils import canonicalize_name

from tests.packaging.helpers import (
    DEV_EXTRA,
    PACKAGE_DIR,
    ROOT,
    canonical_names,
    requirements,
    runtime_extras,
)

#: Imported by the package yet declared nowhere, on purpose (pyproject.toml says why): top-level module -> where.
UNDECLARED = {
    "flask_appbuilder": "OMSHook.get_connection_form_widgets, called only by Airflow 3.1's API server with FAB",
    "flask_babel": "OMSHook.get_connection_form_widgets, called only by Airflow 3.1's API server with FAB",
    "wtforms": "OMSHook.get_connection_form_widgets, called only by Airflow 3.1's API server with FAB",
    "pytest": "airflow_provider_oms.testing.pytest_plugin, loaded only by pytest",
}
#: Providers used when installed and never required (the import is guarded): distribution -> where and why.
OPTIONAL_PROVIDERS = {
    "apache-airflow-providers-amazon": "source_providers.amazon_hook_class: an `aws` source connection is resolved "
    "through the Amazon provider's hook when it is installed, read as plain keys when it is not",
}
#: Modules of a namespace shared by several distributions (or not installed here): module prefix -> distribution.
NAMESPACES = {"openlineage.client": "openlineage-python"}
#: Provider namespaces whose providers are named by two segments (airflow.providers.common.compat...).
TWO_SEGMENT_PROVIDERS = {"apache", "atlassian", "cncf", "common", "dbt", "microsoft"}


def third_party_imports() -> dict[str, list[str]]:
    """Every absolute import of a non-stdlib module anywhere in the package (lazy ones too): module -> places."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "airflow_provider_oms":
                    found[module].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@functools.cache
def installed_packages() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(module: str) -> str:
    """The distribution a module comes from, canonicalized."""
    parts = module.split(".")
    if parts[0] == "airflow":
        if len(parts) > 2 and parts[1] == "providers":
            count = 2 if parts[2] in TWO_SEGMENT_PROVIDERS else 1
            return canonicalize_name("apache-airflow-providers-" + "-".join(parts[2 : 2 + count]))
        # airflow.sdk (task SDK) and the rest (core): the apache-airflow distribution pins both.
        return "apache-airflow"
    for prefix, distribution in NAMESPACES.items():
        if module == prefix or module.startswith(prefix + "."):
            return canonicalize_name(distribution)
    distributions = sorted(set(installed_packages().get(parts[0], [])))
    assert len(distributions) == 1, (
        f"cannot tell which distribution {module} comes from (candidates: {distributions}); add it to NAMESPACES"
    )
    return canonicalize_name(distributions[0])


def test_every_third_party_import_is_declared():
    declared = canonical_names(requirements())
    for extra in runtime_extras():
        declared |= canonical_names(requirements(extra=extra))
    missing: dict[str, list[str]] = defaultdict(list)
    for module, places in third_party_imports().items():
        if module.partition(".")[0] in UNDECLARED:
            continue
        distribution = distribution_of(module)
        if distribution not in declared and distribution not in OPTIONAL_PROVIDERS:
            missing[distribution] += places
    assert not missing, f"imported but not declared in pyproject.toml dependencies (or an extra): {dict(missing)}"


def test_undeclared_list_names_only_modules_still_imported():
    imported = {module.partition(".")[0] for module in third_party_imports()}
    assert set(UNDECLARED) <= imported, f"no longer imported, drop from UNDECLARED: {set(UNDECLARED) - imported}"
    optional = {distribution_of(module) for module in third_party_imports() if module.startswith("airflow.providers.")}
    optional &= set(OPTIONAL_PROVIDERS)
    assert optional == set(OPTIONAL_PROVIDERS), "no longer imported, drop from OPTIONAL_PROVIDERS"


def test_every_requirement_has_a_lower_bound():
    reqs = requirements() + [req for extra in runtime_extras() for req in requirements(extra=extra)]
    unbounded = [str(req) for req in reqs if not any(spec.operator in {">=", "~=", "=="} for spec in req.specifier)]
    assert unbounded == []


def test_no_developer_tool_is_a_runtime_dependency():
    assert canonical_names(requirements()) & canonical_names(requirements(extra=DEV_EXTRA)) == set()
