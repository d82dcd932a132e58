"""
`make bench`: measure the provider against the official SDK and the raw-HTTP floor, side by side, in one run.

Runs every benchmark against the local OMS emulator on 127.0.0.1, prints a table and rewrites
``BENCHMARKS.md`` at the repository root. Benchmarks report, they never assert; each runs in a process of
its own (so that one's threads, imports and memory never weigh on another's numbers) and stops by itself.

    python benchmarks/run.py            # the full run, about 5 to 10 minutes on 2 cores
    python benchmarks/run.py --quick    # a smoke run with small sizes, about a minute
    python benchmarks/run.py --only per-call --replace   # rerun one benchmark, rewrite only its parts
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from support import PYTHON, QUICK, REPO_ROOT, Section, Sizes, Table, Target, machine, versions

#: Benchmark modules, in the order they run and appear.
SECTIONS = {
    "imports": "import_cost",
    "per-call": "per_call",
    "http-economy": "http_economy",
    "trigger-scale": "trigger_scale",
    "shared-poll": "shared_poll",
    "async-transport": "async_transport",
    "fan-out": "fan_out",
}
#: No benchmark may run longer than this; a stuck one is ended and reported as failed.
SECTION_TIMEOUT = 900


def _numbers(text: str) -> tuple[int, ...]:
    """Parse a comma-separated list of counts: ``100,1000``."""
    return tuple(int(part) for part in text.split(","))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not results")
    parser.add_argument(
        "--only", action="append", choices=sorted(SECTIONS), help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="with --only: rewrite only these benchmarks' sections and target rows in the existing report",
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="the report to rewrite")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs of every process)")
    for field in dataclasses.fields(Sizes):
        if field.name != "quick":
            kind = {"int": int, "float": float}.get(str(field.type), _numbers)
            parser.add_argument(
                f"--{field.name.replace('_', '-')}",
                type=kind,
                metavar="N,N..." if kind is _numbers else str(field.type).upper(),
                help=f"default {getattr(Sizes(), field.name)}, with --quick {getattr(QUICK, field.name)}",
            )
    # Internal: run one benchmark in this process and write its result as JSON.
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Sizes)
        if field.name != "quick" and getattr(args, field.name, None) is not None
    }
    return dataclasses.replace(sizes, **overrides)


# -- one benchmark, in its own process -------------------------------------------------------------


def _run_section(args: argparse.Namespace) -> int:
    sizes = Sizes(**json.loads(args.sizes))
    module = importlib.import_module(SECTIONS[args.section])
    started = time.monotonic()
    section: Section = module.run(sizes, args.scratch)
    section.seconds = time.monotonic() - started
    args.result.write_text(json.dumps(dataclasses.asdict(section)))
    return 0


def _load_section(data: dict[str, object]) -> Section:
    section = Section(**data)  # type: ignore[arg-type]
    section.tables = [Table(**table) for table in data["tables"]]  # type: ignore[attr-defined]
    section.targets = [Target(**target) for target in data["targets"]]  # type: ignore[attr-defined]
    return section


def _spawn(name: str, sizes: Sizes, scratch: Path) -> Section:
    result, log = scratch / f"{name}.json", scratch / f"{name}.log"
    command = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--section",
        name,
        "--sizes",
        json.dumps(dataclasses.asdict(sizes)),
        "--result",
        str(result),
        "--scratch",
        str(scratch),
    ]
    started = time.monotonic()
    with log.open("w") as output:
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                command, stdout=output, stderr=subprocess.STDOUT, timeout=SECTION_TIMEOUT, check=False
            )
            failure = f"exit code {done.returncode}" if done.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"stopped after {SECTION_TIMEOUT} s"
    if not failure and result.exists():
        return _load_section(json.loads(result.read_text()))
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    return Section(
        title=f"{name} (failed)",
        method=f"The benchmark failed ({failure or 'no result'}); the end of its output:",
        notes=["```\n" + "\n".join(tail) + "\n```"],
        seconds=time.monotonic() - started,
    )


# -- the report ------------------------------------------------------------------------------------


def _met(target: Target) -> str:
    return "reported" if target.met is None else "yes" if target.met else "**no**"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(
    sections: list[Section], sizes: Sizes, command: str, seconds: float, facts: dict[str, dict[str, str]]
) -> str:
    """Return the text of ``BENCHMARKS.md``."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/run.py`); run it again to refresh this file. Every comparison "
        "below ran side by side in the same run, against the local OMS emulator on 127.0.0.1. The benchmarks "
        "report and never assert; the test suite does not depend on them.",
        "",
    ]
    if sizes.quick:
        lines += [
            "> **Quick run** (`--quick`): small sizes, a smoke test of the benchmarks. These are not results.",
            "",
        ]
    lines += ["## Machine", ""]
    lines += _markdown_table(["", ""], [[key, value] for key, value in facts["machine"].items()])
    lines += ["## Versions", ""]
    lines += _markdown_table(["", ""], [[key, value] for key, value in facts["versions"].items()])
    lines += [
        "## Command",
        "",
        f"`{command}` on {when}, {seconds / 60:.1f} minutes in all. Sizes: "
        + ", ".join(f"{field.name}={getattr(sizes, field.name)}" for field in dataclasses.fields(Sizes)),
        "",
        "## Targets",
        "",
    ]
    lines += _markdown_table(TARGET_HEADERS, _target_rows(sections))
    missed = _missed_lines(sections)
    if missed:
        lines += [MISSED_HEADING, "", *missed, ""]
    for section in sections:
        lines += _section_markdown(section)
    return "\n".join(lines).rstrip() + "\n"


TARGET_HEADERS = ["benchmark", "target", "measured", "goal", "met"]
MISSED_HEADING = "### Where a target is missed, by how much and why"


def _target_rows(sections: list[Section]) -> list[list[str]]:
    return [[s.title, t.name, t.measured, t.goal, _met(t)] for s in sections for t in s.targets]


def _missed_lines(sections: list[Section]) -> list[str]:
    return [
        f"- **{t.name}** ({s.title}): {t.measured}, goal {t.goal}. {t.why}"
        for s in sections
        for t in s.targets
        if t.met is False
    ]


def _section_markdown(section: Section, rerun: str = "") -> list[str]:
    lines = [f"## {section.title}", ""]
    if rerun:
        lines += [f"> {rerun}", ""]
    lines += [section.method, ""]
    for table in section.tables:
        if table.title:
            lines += [f"**{table.title}**", ""]
        lines += _markdown_table(table.headers, table.rows)
    for target in section.targets:
        if target.why and target.met is not False:
            lines += [f"- {target.name}: {target.why}"]
    lines += [f"- {note}" if not note.startswith("```") else note for note in section.notes]
    lines += [f"- This benchmark took {section.seconds:.0f} s.", ""]
    return lines


def _next(lines: list[str], start: int) -> int:
    """Return the index of the next ``## `` heading after ``start`` (or the end)."""
    return next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))


def replace_sections(text: str, sections: list[Section], rerun: str) -> str:
    """
    Return ``text`` (an existing ``BENCHMARKS.md``) with only these benchmarks' parts rewritten.

    Each benchmark's own section (from its ``## title`` to the next ``## `` heading), its rows of the targets
    table and its lines under "where a target is missed" are replaced; everything else is left as it was. A
    benchmark not in the report yet is added: its section last, its rows at the end of the targets table.
    ``rerun`` (when and how these were run) heads each rewritten section.
    """
    lines = text.rstrip("\n").split("\n")
    for section in sections:
        heading = f"## {section.title}"
        prefix = "| " + _cell(section.title) + " |"
        if heading not in lines:  # a benchmark new to the report: its section goes last, its rows end the targets
            targets = lines.index("## Targets")
            last_row = max(
                i for i in range(targets, len(lines)) if lines[i].startswith("| ") and i < _next(lines, targets)
            )
            lines[last_row + 1 : last_row + 1] = [prefix + " |"]
            lines += ["", heading]
        start = lines.index(heading)
        end = _next(lines, start)
        lines[start:end] = _section_markdown(section, rerun)
        rows = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        if not rows:
            raise SystemExit(f"no target rows for {section.title!r} in the report: run the full benchmark instead")
        new_rows = _markdown_table(TARGET_HEADERS, _target_rows([section]))[2:-1]
        lines[rows[0] : rows[-1] + 1] = new_rows
        lines = [line for line in lines if not (line.startswith("- **") and f"** ({section.title}): " in line)]
        missed = _missed_lines([section])
        if MISSED_HEADING in lines:
            at = lines.index(MISSED_HEADING) + 2
            lines[at:at] = missed
        elif missed:
            at = rows[0] + len(new_rows) + 1
            lines[at:at] = [MISSED_HEADING, "", *missed, ""]
        if MISSED_HEADING in lines:  # drop the heading when no miss is left under it
            at = lines.index(MISSED_HEADING)
            if not lines[at + 2].startswith("- **"):
                del lines[at : at + 2]
    return "\n".join(lines) + "\n"


def _text_table(headers: list[str], rows: list[list[str]], width: int = 60) -> list[str]:
    """Align a table for the terminal, wrapping cells wider than ``width`` onto more lines."""
    wrapped = [[textwrap.wrap(str(cell), width) or [""] for cell in row] for row in [headers, *rows]]
    widths = [max(len(line) for row in wrapped for line in row[i]) for i in range(len(headers))]
    lines = []
    for number, row in enumerate(wrapped):
        for depth in range(max(len(cell) for cell in row)):
            parts = [(cell[depth] if depth < len(cell) else "").ljust(w) for cell, w in zip(row, widths, strict=True)]
            lines.append("  ".join(parts).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render_text(sections: list[Section]) -> str:
    """Return the report for the terminal."""
    lines: list[str] = []
    for section in sections:
        lines += ["", f"== {section.title} ({section.seconds:.0f} s)"]
        for table in section.tables:
            if table.title:
                lines += ["", table.title]
            lines += _text_table(table.headers, table.rows)
        lines += [note for note in section.notes if not note.startswith("```")]
        if section.notes and section.notes[-1].startswith("```"):
            lines += [section.notes[-1]]
    lines += ["", "== Targets"]
    lines += _text_table(
        ["target", "measured", "goal", "met"],
        [[t.name, t.measured, t.goal, _met(t).strip("*")] for s in sections for t in s.targets],
    )
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the report and rewrite BENCHMARKS.md."""
    args = _parse_args(argv)
    if args.section:
        return _run_section(args)
    if args.replace and not args.only:
        raise SystemExit("--replace needs --only: it rewrites only the benchmarks run")
    sizes = _sizes(args)
    names = [name for name in SECTIONS if not args.only or name in args.only]
    command = shlex.join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    facts = {"machine": machine(), "versions": versions()}
    started = time.monotonic()
    sections = []
    scratch = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    try:
        # Importing the official SDK writes ~/.huaweicloud/application_id, and Airflow creates ~/airflow:
        # both go to this temporary folder. Every process of the run talks to 127.0.0.1 only.
        os.environ["HOME"] = str(scratch / "home")
        os.environ["AIRFLOW_HOME"] = str(scratch / "airflow-home")
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
        for number, name in enumerate(names, 1):
            print(f"[{number}/{len(names)}] {name} ...", end=" ", flush=True)
            section = _spawn(name, sizes, scratch)
            print(f"{section.seconds:.0f} s" + (" FAILED" if section.title.endswith("(failed)") else ""), flush=True)
            sections.append(section)
    finally:
        if args.keep:
            print(f"Logs and scratch files kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - started
    print(render_text(sections))
    if args.replace:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        load = facts["machine"].get("Load average at start (1, 5, 15 min)", "?")
        rerun = (
            f"Rerun on its own: `{command}` on {when} (load average at start {load}; sizes: calls={sizes.calls}, "
            f"call_block={sizes.call_block}). The other sections are from the run under Command."
        )
        args.output.write_text(replace_sections(args.output.read_text(), sections, rerun))
    else:
        args.output.write_text(render_markdown(sections, sizes, command, seconds, facts))
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
