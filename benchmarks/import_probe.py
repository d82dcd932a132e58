"""
Import one module in this fresh interpreter, after a prelude, and print what it cost as one JSON line.

``--prelude`` modules are imported first and not timed (``airflow.sdk``: what every DAG file has paid for
already). With ``--trace``, every import statement run while importing the module is recorded, to tell
whether the module reaches a heavy dependency and through which chain of imports, even when that dependency
was already loaded by the prelude. ``--trace`` slows the import: its timing is not used.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import importlib.util
import json
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

#: Imported lazily by design: a DAG file that only uses the operator or sensor must not pay for them.
HEAVY = (
    "httpx",
    "tenacity",
    "requests",
    "airflow_provider_oms.hooks",
    "airflow_provider_oms.client",
    "airflow_provider_oms.waiting",
    "airflow_provider_oms.testing",
)


def _absolute(name: str, globals_: dict[str, Any] | None, level: int) -> str:
    if level == 0:
        return name
    package = (globals_ or {}).get("__package__") or ""
    return importlib.util.resolve_name("." * level + name, package)


def _trace_imports() -> dict[str, set[str]]:
    """Record ``importer -> imported`` for every import statement and ``importlib.import_module`` call."""
    edges: dict[str, set[str]] = {}
    original_import: Callable[..., Any] = builtins.__import__
    original_import_module = importlib.import_module

    def add(importer: str, target: str) -> None:
        parts = target.split(".")
        # Importing a.b.c runs a and a.b first.
        edges.setdefault(importer, set()).update(".".join(parts[: n + 1]) for n in range(len(parts)))

    def traced_import(
        name: str,
        globals_: dict[str, Any] | None = None,
        locals_: Any = None,
        fromlist: tuple[str, ...] | None = (),
        level: int = 0,
    ) -> Any:
        module = original_import(name, globals_, locals_, fromlist, level)
        importer = str((globals_ or {}).get("__name__", "?"))
        try:
            target = _absolute(name, globals_, level)
        except (ImportError, ValueError):
            return module
        add(importer, target)
        for item in fromlist or ():
            if f"{target}.{item}" in sys.modules:
                add(importer, f"{target}.{item}")
        return module

    def traced_import_module(name: str, package: str | None = None) -> Any:
        module = original_import_module(name, package)
        importer = str(sys._getframe(1).f_globals.get("__name__", "?"))
        add(importer, module.__name__)
        return module

    builtins.__import__ = traced_import
    importlib.import_module = traced_import_module  # type: ignore[assignment]
    return edges


def _chain(edges: dict[str, set[str]], start: str, wanted: str) -> list[str] | None:
    """Return the shortest chain of imports from ``start`` to ``wanted`` (or one of its sub-modules)."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if current == wanted or current.startswith(wanted + "."):
            chain = [current]
            while (before := previous[chain[-1]]) is not None:
                chain.append(before)
            return chain[::-1]
        for following in sorted(edges.get(current, ())):
            if following not in previous:
                previous[following] = current
                queue.append(following)
    return None


def main() -> int:
    """Import the module and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("module", help="the module to import; several, comma-separated, are imported in turn")
    parser.add_argument("--prelude", action="append", default=[], help="a module imported first, untimed")
    parser.add_argument("--trace", action="store_true", help="record the import chains to heavy modules")
    args = parser.parse_args()
    for name in args.prelude:
        importlib.import_module(name)
    before = set(sys.modules)
    edges = _trace_imports() if args.trace else {}
    # Marks where the timed import begins in the output of `python -X importtime`.
    print("-- import_probe: timed import begins --", file=sys.stderr, flush=True)
    modules = args.module.split(",")
    started = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    seconds = time.perf_counter() - started
    new = set(sys.modules) - before
    result: dict[str, Any] = {"seconds": seconds, "new_modules": len(new)}
    if args.trace:
        result["heavy"] = {
            name: {
                "loaded_by_prelude": any(m == name or m.startswith(name + ".") for m in before),
                "newly_loaded": sorted(m for m in new if m == name or m.startswith(name + ".")),
                "chain": next(filter(None, (_chain(edges, module, name) for module in modules)), None),
            }
            for name in HEAVY
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
