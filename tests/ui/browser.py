"""
A headless Chromium for the UI tests: the system's browser (Debian's ``chromium``), driven by Playwright through
``executable_path``. Playwright's own browser builds are never downloaded.

`make test-ui` installs the browser when it is missing (tests/ui/install_browser.sh); a run without one fails
saying so, it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

#: Where to look for the browser, in order; OMS_UI_CHROMIUM names another one.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_BROWSER = (
    "No Chromium to drive: none of {names} is on PATH and OMS_UI_CHROMIUM is not set. `make test-ui` installs "
    "Debian's `chromium` with apt-get (as root); elsewhere install Chromium with the system's package manager "
    "or point OMS_UI_CHROMIUM at a Chromium or Chrome binary."
)


def find_chromium() -> str:
    """The path of the Chromium to drive; raise ``RuntimeError`` with what to do when there is none."""
    named = os.environ.get("OMS_UI_CHROMIUM")
    if named:
        found = shutil.which(named)
        if not found:
            raise RuntimeError(f"OMS_UI_CHROMIUM={named!r} is not an executable")
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(NO_BROWSER.format(names=", ".join(CANDIDATES)))


def _parent_and_cmdline(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # the process just ended
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), cmdline


def descendants(root: int) -> dict[int, str]:
    """The live processes below ``root`` (children, grandchildren, ...), with their command lines."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _parent_and_cmdline(int(entry.name))
            if found:
                table[int(entry.name)] = found
    below: dict[int, str] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier and pid not in below}
        below.update({pid: table[pid][1] for pid in frontier})
    return below


def headless_browsers() -> dict[int, str]:
    """The Chromium main processes this test process started (through Playwright's driver) that run headless."""
    return {
        pid: cmdline
        for pid, cmdline in descendants(os.getpid()).items()
        if "--headless" in cmdline and "--type=" not in cmdline  # the browser itself, not its helper processes
    }


def wait_until_gone(pids: list[int], timeout: float = 15) -> list[int]:
    """Wait for processes to end; SIGKILL the ones left after ``timeout`` and return them."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _parent_and_cmdline(pid) is not None]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive
