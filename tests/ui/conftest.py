"""
Fixtures of the web UI tests: the OMS emulator, a real Airflow deployment on 127.0.0.1 (the one of
tests/deployment), and a headless Chromium driven by Playwright, one of each per module.

These tests need Playwright (in .venv-distributed, beside Airflow 3.3.2) and a system Chromium: `make test-ui`
makes both and runs them with OMS_UI=1. Without it (a plain `pytest`, `make test` before its last step) they are not
collected at all, rather than failing for a missing Playwright or passing as skipped.

Screenshots go to a temporary folder, or to OMS_UI_SCREENSHOTS when it is set (`make screenshots` sets it to
docs/images); a failing scenario leaves ``failed-<test>.png`` in a temporary folder (its path is printed).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from airflow_provider_oms.testing import OMSEmulator
from tests.deployment.airflow_deployment import AirflowDeployment, running_deployment, slow_emulator
from tests.ui import browser as chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

if not os.environ.get("OMS_UI"):
    collect_ignore_glob = ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "example_oms_start_migration.py"
CONN_ID = "huaweicloud_oms_default"
REGION = "cn-north-4"
# Credentials of the emulator for this test only: distinctive, so that finding them on a page means a leak.
AK = "UITESTAK7Q2W9E4R6T8Y"
SK = "ui-SK-Zp4Lm8Qw2Xc6Vb1Nk9Hj3Gf7"
#: The browser window: wide enough for the screenshots in docs/images (at least 1280 px).
VIEWPORT = {"width": 1440, "height": 900}
#: Every task of the deployment retries once, 5 s after a failed try, so that the Grid shows a retry.
RETRY_ONCE = {"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1", "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5"}


class Shoot(Protocol):
    """The ``shoot`` fixture: ``shoot(name, *parts)`` saves ``<name>.png`` cropped to ``parts``."""

    def __call__(self, name: str, *parts: Locator, margin: int = 12) -> Path: ...


def say(config: pytest.Config, line: str) -> None:
    """Write a line to the terminal even while pytest captures output (what ran, where the pictures are)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OMSEmulator]:
    """The emulator, slow enough (2 s an object) that a run is seen deferred (see slow_emulator)."""
    with slow_emulator(tmp_path_factory.mktemp("buckets"), access_key=AK, secret_key=SK, conn_id=CONN_ID) as emu:
        yield emu


@pytest.fixture(scope="module")
def airflow(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, emulator: OMSEmulator
) -> Iterator[AirflowDeployment]:
    """
    api-server, scheduler, dag-processor and triggerer on 127.0.0.1 with the example DAG, its operator
    deferrable (``[operators] default_deferrable``), the Test button on, every task retried once 5 s after a
    failed try, and the default connection (from the environment, with a region so that the OMS Console link has an
    address, and one attempt per OMS call so that an injected outage fails a try at once).
    """
    connection = emulator.airflow_connection()
    connection["extra"]["region"] = REGION
    # One attempt per call: an outage fails the try at once, and Airflow's retry (below) takes over.
    connection["extra"]["retry_max_attempts"] = 1
    home = tmp_path_factory.mktemp("airflow-home")
    with running_deployment(
        home, [DAG_FILE], {CONN_ID: connection}, say=lambda line: say(request.config, line), config=RETRY_ONCE
    ) as up:
        yield up


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """
    Debian's Chromium, headless, started by Playwright; checked to be running headless while the tests use it,
    and to be gone (with every helper process) afterwards.
    """
    from playwright.sync_api import sync_playwright

    try:
        executable = chromium.find_chromium()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        running = chromium.headless_browsers()
        assert running, f"no headless Chromium runs below this process: {chromium.descendants(os.getpid())}"
        for pid, cmdline in sorted(running.items()):
            say(request.config, f"Chromium {launched.version} runs headless (--headless), pid {pid}: {cmdline[:100]}")
        try:
            yield launched
        finally:
            launched.close()
    below = chromium.descendants(os.getpid())
    helpers = [pid for pid, cmd in below.items() if "chrom" in cmd or "playwright" in cmd]
    left = chromium.wait_until_gone([*running, *helpers])
    assert not left, f"browser processes left running (killed now): {left}; below this process: {below}"


@pytest.fixture(scope="module")
def screenshot_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: OMS_UI_SCREENSHOTS (docs/images for `make screenshots`), or a temporary folder."""
    named = os.environ.get("OMS_UI_SCREENSHOTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    say(request.config, f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def page(browser: Browser, airflow: AirflowDeployment) -> Iterator[Page]:
    """One browser tab for the module's scenarios, which follow each other like a person's session."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, base_url=airflow.base_url)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def shoot(page: Page, screenshot_dir: Path) -> Shoot:
    """
    Take a screenshot as ``<name>.png``: of the parts of the page that matter, cropped to the smallest box
    around them with a margin, ``shoot("connection-test", toast)``; of the whole tab without parts.
    """

    def _shoot(name: str, *parts: Locator, margin: int = 12) -> Path:
        path = screenshot_dir / f"{name}.png"
        if not parts:
            page.screenshot(path=str(path))
            return path
        boxes = [part.bounding_box() for part in parts]
        assert all(boxes), f"{name}: a part to photograph is not on the page"
        left = max(0.0, min(box["x"] for box in boxes if box) - margin)
        top = max(0.0, min(box["y"] for box in boxes if box) - margin)
        right = max(box["x"] + box["width"] for box in boxes if box) + margin
        bottom = max(box["y"] + box["height"] for box in boxes if box) + margin
        page.screenshot(path=str(path), clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
        return path

    return _shoot


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, for the failure screenshot below."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def failure_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots of failed scenarios go (never docs/images)."""
    return Path(tmp_path_factory.mktemp("failures"))


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, failure_dir: Path) -> Iterator[None]:
    """When a scenario fails, keep what the browser showed as failed-<test>.png."""
    yield
    report: pytest.TestReport | None = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "page" in request.fixturenames:
        path = failure_dir / f"failed-{request.node.name}.png"
        request.getfixturevalue("page").screenshot(path=str(path))
        say(request.config, f"what the browser showed: {path}")
