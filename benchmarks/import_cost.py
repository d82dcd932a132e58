"""
Import cost, paid by every DAG parse: the provider's operator and sensor modules against the official SDK.

Each measurement is a fresh interpreter (``import_probe.py``) that imports ``airflow.sdk`` first, untimed, then
times one import. Runs of the three modules alternate, so that a noisy moment hits them alike; the median is
reported. One more run under ``python -X importtime`` says where the time goes, by top-level package.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from support import BENCH_DIR, PYTHON, Section, Sizes, Table, Target, median, ms

OPERATOR = "airflow_provider_oms.operators.oms"
SENSOR = "airflow_provider_oms.sensors.oms"
#: What a DAG file that uses every operator and sensor imports: the three modules, in one interpreter.
EVERY = f"{OPERATOR},airflow_provider_oms.operators.lifecycle,{SENSOR}"
SDK = "huaweicloudsdkoms.v2"
MODULES = {
    OPERATOR: "provider operator module",
    SENSOR: "provider sensor module",
    EVERY: "every operator and sensor module",
    SDK: "official SDK (v2)",
}
#: The issue's measure: after `import airflow.sdk`. The second one also loads `requests` first, which the
#: provider and the SDK both depend on and Airflow itself does not import: what remains is their own code.
PRELUDES = {
    "after `import airflow.sdk`": ["airflow.sdk"],
    "after `airflow.sdk` and `requests`": ["airflow.sdk", "requests"],
}
MARKER = "-- import_probe: timed import begins --"
TARGET_SECONDS = 0.010
TARGET_SHARE = 0.10


def _compile_provider() -> None:
    """
    Write the provider's bytecode (``__pycache__``) first, as installing a wheel does.

    The SDK comes from a wheel, compiled when pip installed it; the provider is installed editable, and with
    ``PYTHONDONTWRITEBYTECODE`` set nothing would ever write its bytecode: each run would compile its sources.
    """
    import airflow_provider_oms

    package = Path(airflow_provider_oms.__file__).parent
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [PYTHON, "-m", "compileall", "-q", str(package)], check=True, capture_output=True, timeout=120
    )


def _probe(module: str, prelude: list[str], *extra: str, importtime: bool = False) -> tuple[dict[str, Any], str]:
    args = [PYTHON, *(["-X", "importtime"] if importtime else []), str(BENCH_DIR / "import_probe.py"), module]
    for name in prelude:
        args += ["--prelude", name]
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*args, *extra], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _self_times(stderr: str) -> dict[str, float]:
    """Return the seconds each module took by itself, from ``-X importtime`` lines after the marker."""
    times: dict[str, float] = {}
    _, _, timed = stderr.partition(MARKER)
    for line in timed.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        times[name] = int(self_us) / 1e6
    return times


def _by_package(times: dict[str, float]) -> dict[str, float]:
    """Sum self times by top-level package."""
    by_package: dict[str, float] = defaultdict(float)
    for name, seconds in times.items():
        by_package[name.split(".")[0]] += seconds
    return dict(by_package)


def _describe_breakdown(parts: dict[str, float], top: int = 5) -> str:
    total = sum(parts.values())
    largest = sorted(parts.items(), key=lambda item: item[1], reverse=True)[:top]
    return ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in largest) if total else "n/a"


def run(sizes: Sizes, scratch: Path) -> Section:
    """Measure ``sizes.import_runs`` fresh interpreters per module and prelude (a quick run: the first prelude)."""
    runs = sizes.import_runs
    preludes = dict(list(PRELUDES.items())[:1]) if sizes.quick else PRELUDES
    section = Section(
        title="Import cost",
        method=(
            f"Fresh interpreters; the prelude is imported first and not timed, then one module is timed with "
            f"`time.perf_counter`. Median of {runs} run(s) per module and prelude, the modules alternating"
            + "; the provider's bytecode is written first, as installing its wheel does (the SDK's was, by pip)"
            + ("." if sizes.quick else "; one untimed warm-up run each.")
            + " `HOME` is a temporary folder (importing the SDK writes "
            "`~/.huaweicloud/application_id`)."
        ),
    )
    _compile_provider()
    timings: dict[tuple[str, str], float] = {}
    for prelude_name, prelude in preludes.items():
        if not sizes.quick:
            for module in MODULES:
                _probe(module, prelude)  # warm-up: file-system cache and bytecode
        samples: dict[str, list[float]] = {module: [] for module in MODULES}
        for _ in range(runs):
            for module in MODULES:
                samples[module].append(_probe(module, prelude)[0]["seconds"])
        for module, values in samples.items():
            timings[(prelude_name, module)] = median(values)

    headers = [
        "module",
        *(f"median {name}" for name in preludes),
        "share of the SDK's (first column)",
        "where the time goes",
    ]
    first = next(iter(preludes))
    sdk_seconds = timings[(first, SDK)]
    rows = []
    breakdowns: dict[str, dict[str, float]] = {}
    self_times: dict[str, dict[str, float]] = {}
    for module, label in MODULES.items():
        self_times[module] = _self_times(_probe(module, preludes[first], importtime=True)[1])
        breakdowns[module] = _by_package(self_times[module])
        rows.append(
            [
                f"{label} (`{module.replace(',', '`, `')}`)",
                *(ms(timings[(name, module)]) for name in preludes),
                f"{timings[(first, module)] / sdk_seconds:.0%}",
                _describe_breakdown(breakdowns[module]),
            ]
        )
    section.tables.append(Table(headers, rows))
    operator_times = self_times[OPERATOR]
    total = sum(operator_times.values()) or 1.0
    own = sorted(
        ((seconds, name) for name, seconds in operator_times.items() if name.startswith("airflow_provider_oms")),
        reverse=True,
    )
    section.tables.append(
        Table(
            ["provider module", "self time under -X importtime", "share of the operator module's import"],
            [[f"`{name}`", ms(seconds), f"{seconds / total:.0%}"] for seconds, name in own],
            title="The provider's own modules, importing the operator module (`-X importtime` inflates every time)",
        )
    )

    operator_seconds = timings[(first, OPERATOR)]
    requests_share = _share(breakdowns[OPERATOR], ("requests", "urllib3", "charset_normalizer", "idna", "certifi"))
    own_share = _share(breakdowns[OPERATOR], ("airflow_provider_oms",))
    why = (
        f"{ms(operator_seconds - TARGET_SECONDS)} over. By `-X importtime`, `requests` and its dependencies are "
        f"{requests_share:.0%} of the operator module's import (Airflow does not load `requests`; the sync hook "
        f"needs it) and the provider's own modules {own_share:.0%}, led by "
        + ", ".join(f"`{name.removeprefix('airflow_provider_oms.')}`" for _, name in own[:3])
        + " (see the table)."
    )
    if len(preludes) > 1:
        without_requests = timings[(list(preludes)[1], OPERATOR)]
        why += f" With `requests` already loaded, the operator module takes {ms(without_requests)}."
    section.targets.append(
        Target(
            "operator module import after `import airflow.sdk`",
            ms(operator_seconds),
            f"<= {ms(TARGET_SECONDS)}",
            operator_seconds <= TARGET_SECONDS,
            why if operator_seconds > TARGET_SECONDS else "",
        )
    )
    share = operator_seconds / sdk_seconds
    section.targets.append(
        Target(
            "operator module import, share of the SDK's",
            f"{share:.0%} ({ms(operator_seconds)} vs {ms(sdk_seconds)})",
            f"<= {TARGET_SHARE:.0%}",
            share <= TARGET_SHARE,
            why if share > TARGET_SHARE else "",
        )
    )
    every_seconds = timings[(first, EVERY)]
    every_share = every_seconds / sdk_seconds
    section.targets.append(
        Target(
            "every operator and sensor module, share of the SDK's",
            f"{every_share:.0%} ({ms(every_seconds)} vs {ms(sdk_seconds)})",
            f"<= {TARGET_SHARE:.0%}",
            every_share <= TARGET_SHARE,
            "" if every_share <= TARGET_SHARE else "See the tables: what the three modules import at module level.",
        )
    )
    _heavy_imports(section)
    return section


def _share(parts: dict[str, float], packages: tuple[str, ...]) -> float:
    total = sum(parts.values())
    return sum(parts.get(name, 0.0) for name in packages) / total if total else 0.0


def _heavy_imports(section: Section) -> None:
    """Whether the operator and sensor modules reach a heavy import (``import_probe.HEAVY``) at module level."""
    rows = []
    reached_any = []
    preloaded = set()
    for module in (OPERATOR, SENSOR, EVERY):
        heavy = _probe(module, ["airflow.sdk"], "--trace")[0]["heavy"]
        for name, found in heavy.items():
            chain = found["chain"]
            if chain:
                short = [part.removeprefix("airflow_provider_oms.") for part in chain]
                reached_any.append(f"{short[0]} reaches {name} via {' -> '.join(short[1:-1]) or 'a direct import'}")
                if found["loaded_by_prelude"]:
                    preloaded.add(name)
            rows.append(
                [
                    MODULES[module] if module == EVERY else f"`{module}`",
                    f"`{name}`",
                    "yes" if chain else "no",
                    " -> ".join(chain[1:]) if chain else "",
                    "yes" if found["loaded_by_prelude"] else "no",
                    ", ".join(found["newly_loaded"][:3]) or "none",
                ]
            )
    section.tables.append(
        Table(
            [
                "module",
                "heavy import",
                "reached at module level",
                "chain",
                "already loaded by airflow.sdk",
                "newly loaded",
            ],
            rows,
            title="Heavy imports (httpx, tenacity, requests, the hook, the client, the waiting logic, the emulator): "
            "kept out of module level?",
        )
    )
    section.targets.append(
        Target(
            "no heavy import (httpx, tenacity, requests, hook, client, waiting, emulator) at module level of the "
            "operator and sensor modules",
            "; ".join(reached_any) if reached_any else "none reached",
            "none reached",
            not reached_any,
            "Found by recording every import statement run while importing the module (the chain is in the table)"
            + (
                f"; `airflow.sdk` itself already loads {', '.join(sorted(preloaded))}, so with this Airflow the "
                "import adds no time"
                if preloaded
                else ""
            )
            + "."
            if reached_any
            else "",
        )
    )
