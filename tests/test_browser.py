"""The quickstart notebook in a real JupyterLab, driven through Debian's Chromium by Playwright.

One JupyterLab server (loopback, free port, no token, a temporary root holding a copy of
the notebooks) and one browser serve the whole module. The quickstart is opened and run
with Run > Run All Cells, the way a person would; the tests then look at what that person
sees and use the page as they would: the login form (a pasted refresh token, then
"Sign in with browser" approved on the sandbox's verification page in a second tab),
the interactive projects table and a deployment card.

Screenshots go to ``test-artifacts/browser/``. ``MLOPS_NB_UPDATE_SCREENSHOT=1`` also
writes the README's ``notebooks/images/jupyterlab-quickstart.png`` and
``notebooks/images/jupyterlab-deploy.png`` (the deployment notebook's monitoring plots).

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; ``scripts/test.sh`` installs
it), or another Chromium named by ``MLOPS_NB_CHROMIUM`` (``tests/chromium.py``). Playwright's own
browser downloads are never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.chromium import require_chromium

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
README_SCREENSHOT = NOTEBOOKS / "images" / "jupyterlab-quickstart.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# Generous: a 2-core CI machine starting a kernel, the sandbox and the DataTables bundle at once.
PAGE_TIMEOUT_MS = 60_000
RUN_ALL_TIMEOUT_MS = 150_000
# A login: the token exchange and who_am_i, or the device grant's polls (every second in the
# quickstart's sandbox; 5 s elsewhere) and then those.
SIGN_IN_TIMEOUT_MS = 45_000

# Settings a fresh JupyterLab user would not have changed, except where they would put a test at
# the mercy of the network or of rendering order.
LAB_SETTINGS = {
    # The first-run "get notified about official Jupyter news?" toast covers the notebook and
    # asks to fetch a feed from the internet.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
    # Windowed notebooks take cells far from the viewport out of the DOM; every cell must be
    # there to be found and checked.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
# Server side: no news feed, no update check, no PyPI-backed extension manager: no network.
SERVER_CONFIG = {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                            "extension_manager": "readonly"}}

# Console errors that are JupyterLab's own and say nothing about our output; each needs a reason.
# Everything else logged as an error fails the test: our outputs' scripts (the DataTables bundle and
# the table swap), widget rendering errors, and uncaught exceptions.
CONSOLE_NOISE = [
    # The debugger sidebar asks each kernel whether it is being debugged; when the kernel restarts
    # or is replaced before it answers, JupyterLab 4 logs the cancelled request (seen on restarts).
    re.compile(r"^Could not restore the debugger state"),
]
# Logged once per page to prove the console is really being watched.
CONSOLE_CANARY = "mlops-nb browser test: console check"
# Notebook 7's own: Notebook 7.6 throws this while loading its settings, on every page load and
# before any cell runs, with no user settings at all.
NOTEBOOK_7_NOISE = [re.compile(r"^uncaught: Cannot read properties of undefined \(reading 'schema'\)$")]


# -- the JupyterLab server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@dataclass
class Lab:
    url: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def _jupyter(base: Path, app: str, app_class: str) -> Iterator[Lab]:
    """A Jupyter server (``app``: the module that runs it) on a free loopback port, serving a copy of
    the notebooks from ``base``, with no token; its state (settings, workspaces) stays in ``base``."""
    root = base / "root"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "images"))
    for name, data in LAB_SETTINGS.items():
        _write_json(base / "settings" / name, data)
    _write_json(base / "config" / "jupyter_server_config.json", SERVER_CONFIG)

    env = dict(os.environ)
    # The kernel inherits this environment: no real MLOps settings or user config may leak into
    # the form, and JupyterLab's own state stays in the temporary directory.
    for name in ("H2O_MLOPS_GATEWAY", "TOKEN_ENDPOINT", "CLIENT_ID", "REFRESH_TOKEN"):
        env.pop(name, None)
    env.update(MLOPS_NB_CONFIG=str(base / "no-config.json"), JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), PYTHONUNBUFFERED="1")
    port = _free_port()
    command = [
        sys.executable, "-m", app, "--no-browser", "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--{app_class}.user_settings_dir={base / 'settings'}", f"--{app_class}.workspaces_dir={base / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; JupyterLab refuses that otherwise
    log = base / f"{app}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_status(url, process, log)
        yield Lab(url, root, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with _jupyter(tmp_path_factory.mktemp("lab"), "jupyterlab", "LabApp") as server:
        yield server


def _wait_for_status(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{tail}")
        try:
            if requests.get(f"{url}/api/status", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)  # nothing to wait on but the port: poll it
    pytest.fail(f"JupyterLab did not answer /api/status within {timeout} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}")


# -- the browser ------------------------------------------------------------------------------------


@dataclass
class Console:
    """Console errors and uncaught exceptions of every page, minus JupyterLab's known noise."""

    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    noise: list[re.Pattern[str]] = field(default_factory=lambda: list(CONSOLE_NOISE))

    def watch(self, page: Any) -> None:
        """Collect the page's errors from now on."""
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self._record(f"uncaught: {error}"))

    def prove(self, page: Any) -> None:
        """Check that an error logged in ``page`` (which must have loaded a document) is seen."""
        with page.expect_console_message(lambda m: m.text == CONSOLE_CANARY):
            page.evaluate("text => console.error(text)", CONSOLE_CANARY)
        assert self.errors.pop() == CONSOLE_CANARY

    def _on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        where = message.location.get("url", "") if message.location else ""
        entry = f"{text} ({where})" if where and text != CONSOLE_CANARY else text
        self._record(entry, text)

    def _record(self, entry: str, text: str | None = None) -> None:
        (self.ignored if any(p.search(text or entry) for p in self.noise) else self.errors).append(entry)

    def assert_clean(self) -> None:
        assert not self.errors, "JavaScript errors in the page:\n" + "\n".join(self.errors)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_chromium()
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Quickstart:
    """The quickstart, open in JupyterLab after Run All Cells."""

    page: Any
    context: Any
    console: Console

    def cell(self, source_text: str) -> Any:
        """The code cell whose source holds ``source_text``."""
        cells = self.page.locator(".jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea", has_text=source_text))
        playwright_api.expect(cells).to_have_count(1)
        return cells

    @property
    def form(self) -> Any:
        return self.cell("mlops_nb.login(")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def quickstart(lab: Lab, browser: Any) -> Iterator[Quickstart]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    console = Console()
    page = context.new_page()
    console.watch(page)
    # Other tabs (the verification page) are watched as well.
    context.on("page", console.watch)
    try:
        _open_and_run_all(page, console, f"{lab.url}/lab/tree/quickstart.ipynb")
        yield Quickstart(page, context, console)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "quickstart-final.png"))
        context.close()


def _open_and_run_all(page: Any, console: Console, url: str, timeout_ms: int = RUN_ALL_TIMEOUT_MS,
                      before_run: str | None = None) -> None:
    """Open the notebook at ``url`` in JupyterLab, then Run > Run All Cells, and wait until all ran;
    ``before_run`` is a script evaluated in the page just before."""
    page.goto(url)
    console.prove(page)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_for_kernel_idle(page)
    # More room for the notebook, as a person reading it would make (close the file browser).
    open_panel = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if open_panel.count():
        open_panel.click()
    if before_run:
        page.evaluate(before_run)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    _wait_for_all_cells_run(page, timeout_ms)


def _wait_for_kernel_idle(page: Any, timeout: int = PAGE_TIMEOUT_MS) -> None:
    """The notebook is connected to its kernel, which is idle.

    The toolbar's execution indicator says "idle" before any kernel is attached (Run All then
    silently runs nothing); the status bar names the kernel and its state only once connected.
    """
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(timeout=timeout)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=timeout)


def _wait_for_all_cells_run(page: Any, timeout_ms: int = RUN_ALL_TIMEOUT_MS) -> None:
    """Every code cell has an execution count and the kernel is idle; fails on any error output."""
    try:
        page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                const counted = p => /^\\[\\d+\\]:$/.test(p.textContent.trim());
                const failed = '[data-mime-type="application/vnd.jupyter.error"]';
                // Run All stops at a failing cell and leaves the rest unnumbered: stop waiting too.
                return (prompts.length > 0 && prompts.every(counted)) || document.querySelector(failed) !== null;
            }""",
            timeout=timeout_ms,
        )
    except playwright_api.TimeoutError:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "run-all-timeout.png"))
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        status = page.locator(".jp-Notebook-ExecutionIndicator").get_attribute("data-status")
        pytest.fail(f"Run All Cells did not finish in {timeout_ms / 1000:.0f} s: prompts {prompts}, "
                    f"kernel {status}; see {ARTIFACTS / 'run-all-timeout.png'}")
    errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, "a cell failed:\n" + "\n".join(errors.all_inner_texts())
    _wait_for_kernel_idle(page)


# -- signing in outside the page ---------------------------------------------------------------------


def _approve(page: Any, username: str) -> None:
    """Approve the device sign-in shown on ``page``, the sandbox's verification page."""
    page.wait_for_load_state()
    playwright_api.expect(page.locator("#user_code")).not_to_have_value("")
    page.fill("#username", username)
    page.fill("#password", username)  # the sandbox's demo passwords are the usernames
    page.click("#approve")
    playwright_api.expect(page.locator("#result")).to_contain_text("approved")


@dataclass
class SandboxAccess:
    """The kernel's sandbox as the login form names it, and refresh tokens for its users.

    A token comes the way a person gets one from another tool: a device sign-in they
    approve on the verification page.
    """

    gateway_url: str
    issuer: str
    client_id: str
    context: Any

    def openid(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=30).json())

    def refresh_token(self, username: str) -> str:
        config = self.openid()
        start = requests.post(config["device_authorization_endpoint"],
                              data={"client_id": self.client_id, "scope": "openid"}, timeout=30).json()
        page = self.context.new_page()
        page.goto(start["verification_uri_complete"])
        _approve(page, username)
        page.close()
        grant = {"grant_type": DEVICE_CODE_GRANT, "client_id": self.client_id, "device_code": start["device_code"]}
        tokens = requests.post(config["token_endpoint"], data=grant, timeout=30)
        assert tokens.status_code == 200, tokens.text
        return str(tokens.json()["refresh_token"])

    def client(self, username: str) -> Any:
        import mlops_nb

        provider = mlops_nb.TokenProvider(self.refresh_token(username), self.client_id,
                                          self.openid()["token_endpoint"])
        return mlops_nb.Client(self.gateway_url, provider)


@pytest.fixture(scope="module")
def kernel_sandbox(quickstart: Quickstart) -> SandboxAccess:
    form = quickstart.form
    values = {}
    for label in ("Gateway URL", "Issuer or token endpoint", "Client ID"):
        playwright_api.expect(form.get_by_label(label)).to_have_value(re.compile(r"\S"))
        values[label] = form.get_by_label(label).input_value()
    return SandboxAccess(values["Gateway URL"], values["Issuer or token endpoint"], values["Client ID"],
                         quickstart.context)


# -- tests -------------------------------------------------------------------------------------------


def test_login_form_logs_in_with_a_pasted_refresh_token(quickstart: Quickstart,
                                                        kernel_sandbox: SandboxAccess) -> None:
    form = quickstart.form
    token = kernel_sandbox.refresh_token("alice")
    field_ = form.get_by_label("Refresh token")
    playwright_api.expect(field_).to_have_attribute("type", "password")
    field_.fill(token)
    form.get_by_role("button", name="Log in").click()

    card = form.locator(".mlops-nb-card")
    playwright_api.expect(card).to_contain_text("alice", timeout=SIGN_IN_TIMEOUT_MS)
    playwright_api.expect(card).to_contain_text("User")
    playwright_api.expect(form).to_contain_text("Logged in as alice")
    # The form takes the token out of the field as soon as it reads it.
    playwright_api.expect(field_).to_have_value("")
    assert token not in form.inner_text()

    form.scroll_into_view_if_needed()
    quickstart.screenshot("login-card")
    if os.environ.get("MLOPS_NB_UPDATE_SCREENSHOT") == "1":
        _save_readme_screenshot(quickstart)
    quickstart.console.assert_clean()


def _save_readme_screenshot(quickstart: Quickstart) -> None:
    """From the form's buttons and login card down to the projects table: one 1280x900 view."""
    log_in = quickstart.page.get_by_role("button", name="Log in")
    buttons = quickstart.form.locator(".widget-hbox").filter(has=log_in)
    buttons.evaluate("element => element.scrollIntoView({block: 'start'})")
    playwright_api.expect(quickstart.cell("list_projects()").locator("table.dataTable")).to_be_in_viewport()
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    quickstart.page.screenshot(path=str(README_SCREENSHOT))


def test_projects_table_is_interactive(quickstart: Quickstart, kernel_sandbox: SandboxAccess) -> None:
    cell = quickstart.cell("%mlops projects")
    table = cell.locator(".mlops-nb-interactive table.dataTable")
    playwright_api.expect(table).to_be_visible()
    # The static preview gives way to the interactive table once DataTables has drawn it.
    playwright_api.expect(cell.locator(".mlops-nb-static")).to_be_hidden()
    rows = table.locator("tbody tr")
    playwright_api.expect(rows).to_have_count(2)  # alice's two projects
    playwright_api.expect(table).to_contain_text("Credit risk")
    playwright_api.expect(table).to_contain_text("Customer churn")
    # As the quickstart says: search on every table, page controls once there are pages.
    small = cell.locator(".dt-container")
    playwright_api.expect(small.locator(".dt-search input")).to_be_visible()
    playwright_api.expect(small.locator(".dt-info")).to_contain_text("Showing 1 to 2 of 2")
    playwright_api.expect(small.locator(".dt-paging")).to_have_count(0)
    small.locator(".dt-search input").fill("churn")
    playwright_api.expect(rows).to_have_count(1)
    small.locator(".dt-search input").fill("")
    playwright_api.expect(rows).to_have_count(2)

    # More than a page (10 rows): give alice more projects and run the cell again, as she would
    # after creating some.
    with kernel_sandbox.client("alice") as alice:
        for n in range(1, 12):
            alice.storage.project.create_project(project={"display_name": f"Scratch project {n:02d}"})
    _rerun(quickstart.page, cell)

    table = cell.locator(".mlops-nb-interactive table.dataTable")
    rows = table.locator("tbody tr")
    container = cell.locator(".dt-container")
    playwright_api.expect(rows).to_have_count(10)
    playwright_api.expect(container.locator(".dt-info")).to_contain_text("13")
    search = container.locator(".dt-search input")
    paging = container.locator(".dt-paging")
    playwright_api.expect(search).to_be_visible()
    playwright_api.expect(paging).to_be_visible()
    cell.scroll_into_view_if_needed()
    quickstart.screenshot("projects-table")

    paging.locator(".dt-paging-button", has_text=re.compile(r"^2$")).click()
    playwright_api.expect(rows).to_have_count(3)
    paging.locator(".dt-paging-button", has_text=re.compile(r"^1$")).click()
    playwright_api.expect(rows).to_have_count(10)

    search.fill("churn")
    playwright_api.expect(rows).to_have_count(1)
    playwright_api.expect(rows.first).to_contain_text("Customer churn")
    search.fill("")
    playwright_api.expect(rows).to_have_count(10)

    # A click on a column's name sorts by it; a second click reverses the order.
    header = table.locator("thead th", has=quickstart.page.locator(".dt-column-title", has_text=re.compile(
        r"^display_name$")))
    header.locator(".dt-column-title").click()
    playwright_api.expect(rows.first).to_contain_text("Credit risk")
    playwright_api.expect(header).to_have_attribute("aria-sort", "ascending")
    header.locator(".dt-column-title").click()
    playwright_api.expect(rows.first).to_contain_text("Scratch project 11")
    playwright_api.expect(header).to_have_attribute("aria-sort", "descending")
    quickstart.console.assert_clean()


def _rerun(page: Any, cell: Any, *, lab_status_bar: bool = True) -> None:
    """Run one cell again (click into it, Shift+Enter) and wait for its new output (and, where the
    page has JupyterLab's status bar, for the kernel to be idle)."""
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text().strip()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    playwright_api.expect(prompt).not_to_have_text(before, timeout=RUN_ALL_TIMEOUT_MS)
    playwright_api.expect(prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=RUN_ALL_TIMEOUT_MS)
    if lab_status_bar:
        _wait_for_kernel_idle(page)


def test_deployments_show_their_states(quickstart: Quickstart) -> None:
    table = quickstart.cell("%mlops deployments").locator("table.dataTable")
    # The cell waits for the demo's scorers: their states are real ones.
    for state in ("HEALTHY", "FAILED"):
        playwright_api.expect(table).to_contain_text(state)

    card = quickstart.cell("find_deployment(").locator(".mlops-nb-card")
    playwright_api.expect(card).to_contain_text("credit-default A/B")
    badge = card.locator("span[title='HEALTHY']").first
    playwright_api.expect(badge).to_be_visible()
    playwright_api.expect(badge).to_have_text("healthy")

    card.scroll_into_view_if_needed()
    quickstart.screenshot("deployment-card")
    quickstart.console.assert_clean()


def test_the_wide_deployment_table_fits_and_says_what_it_hides(quickstart: Quickstart) -> None:
    cell = quickstart.cell("%mlops deployments")
    table = cell.locator(".mlops-nb-interactive table.dataTable")
    playwright_api.expect(table).to_be_visible()
    note = cell.locator(".mlops-nb-hidden-columns")
    playwright_api.expect(note).to_contain_text("48 more columns not shown")
    playwright_api.expect(note).to_contain_text('mlops_nb.show_table(frame, columns="all")')
    playwright_api.expect(cell.locator(".mlops-nb-caption")).to_contain_text("58 columns, 10 shown")
    headers = table.locator("thead th")
    playwright_api.expect(headers).to_have_count(10)
    assert headers.all_inner_texts()[:4] == ["display_name", "state", "state_message", "project"]

    # It fits: no wider than the output area, nothing to scroll sideways.
    output = cell.locator(".jp-OutputArea-output").filter(has=quickstart.page.locator("table.dataTable"))
    table_box, output_box = table.bounding_box(), output.bounding_box()
    assert table_box is not None and output_box is not None
    assert table_box["x"] + table_box["width"] <= output_box["x"] + output_box["width"] + 1, (table_box, output_box)
    scroller = cell.locator(".dt-layout-table > .dt-layout-cell")
    assert scroller.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    # Text reads left-aligned (JupyterLab right-aligns table cells), and long text wraps.
    first_row = table.locator("tbody tr").first
    assert first_row.locator("td").first.evaluate("e => getComputedStyle(e).textAlign") == "left"
    assert headers.first.evaluate("e => getComputedStyle(e).textAlign") == "left"
    assert first_row.locator("td").first.evaluate("e => getComputedStyle(e).whiteSpace") == "normal"
    # A FAILED row's reason wraps into a few lines, not a column of words twenty lines tall.
    failed = table.locator("tbody tr", has_text="FAILED").first
    line_height = first_row.locator("td").first.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 18")
    failed_box = failed.bounding_box()
    assert failed_box is not None and failed_box["height"] <= 6 * line_height + 12, (failed_box, line_height)
    cell.scroll_into_view_if_needed()
    quickstart.screenshot("deployments-table")
    quickstart.console.assert_clean()


def test_sign_in_with_browser(quickstart: Quickstart) -> None:
    form = quickstart.form
    form.scroll_into_view_if_needed()
    form.get_by_role("button", name="Sign in with browser").click()

    link = form.locator("a[href*='user_code=']")
    playwright_api.expect(link).to_be_visible()
    playwright_api.expect(form).to_contain_text("Waiting for you to approve")
    quickstart.screenshot("device-code")
    code = form.locator("code").filter(has_text=re.compile(r"\w{4}-\w{4}"))
    playwright_api.expect(code).to_be_visible()

    # The link opens a new tab, as it would for a person. bob, not alice, approves: the card can
    # only say bob if this sign-in is what logged the form in.
    with quickstart.context.expect_page() as opened:
        link.click()
    approval = opened.value
    _approve(approval, "bob")
    playwright_api.expect(approval.locator("#user_code")).to_have_count(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    approval.screenshot(path=str(ARTIFACTS / "device-approved.png"))
    approval.close()

    playwright_api.expect(form).to_contain_text("Logged in as bob", timeout=SIGN_IN_TIMEOUT_MS)
    playwright_api.expect(form.locator(".mlops-nb-card")).to_contain_text("bob")
    playwright_api.expect(link).to_have_count(0)
    quickstart.screenshot("device-signed-in")
    quickstart.console.assert_clean()


# -- tables in other pages: a reload, a second tab, a notebook reopened later -------------------------

# The quickstart's table cells (by a piece of their source).
TABLE_CELLS = ("list_projects()", "%mlops projects", "%mlops deployments")


def _expect_interactive(cell: Any) -> None:
    playwright_api.expect(cell.locator(".mlops-nb-interactive table.dataTable")).to_be_visible(
        timeout=RUN_ALL_TIMEOUT_MS)
    playwright_api.expect(cell.locator(".mlops-nb-static")).to_be_hidden()
    # Interactive for real: the search box filters the rows.
    rows = cell.locator(".mlops-nb-interactive table.dataTable tbody tr")
    before = rows.count()
    search = cell.locator(".dt-search input")
    search.fill("no row has this text")
    playwright_api.expect(rows).to_have_count(1)  # DataTables' "No matching records found" row
    playwright_api.expect(rows.first).to_contain_text("No matching records")
    search.fill("")
    playwright_api.expect(rows).to_have_count(before)


def _save(page: Any) -> None:
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    dirty = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")
    playwright_api.expect(dirty).to_have_count(0)


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_for_kernel_idle(page)


def test_tables_stay_interactive_after_a_reload_and_in_a_second_tab(quickstart: Quickstart, lab: Lab) -> None:
    page = quickstart.page
    _save(page)
    page.reload()
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    _wait_for_kernel_idle(page)
    for source in TABLE_CELLS:  # as saved, before running anything
        _expect_interactive(quickstart.cell(source))
    for source in TABLE_CELLS:  # run again in the reloaded page, in the same kernel
        cell = quickstart.cell(source)
        _rerun(page, cell)
        _expect_interactive(cell)
    quickstart.cell("%mlops projects").scroll_into_view_if_needed()
    quickstart.screenshot("tables-after-reload")

    second = quickstart.context.new_page()
    quickstart.console.watch(second)
    try:
        _open(second, f"{lab.url}/lab/tree/quickstart.ipynb")
        tab = Quickstart(second, quickstart.context, quickstart.console)
        for source in TABLE_CELLS:
            cell = tab.cell(source)
            _rerun(second, cell)
            _expect_interactive(cell)
        tab.cell("%mlops deployments").scroll_into_view_if_needed()
        tab.screenshot("tables-in-a-second-tab")
    finally:
        second.close()
    quickstart.console.assert_clean()


def test_a_notebook_reopened_later_has_interactive_tables_and_an_untrusted_one_static(
        quickstart: Quickstart, lab: Lab) -> None:
    page = quickstart.page
    _save(page)
    # Closing JupyterLab (the page first) ends the kernel; the notebook keeps its outputs.
    page.goto("about:blank")
    for session in requests.get(f"{lab.url}/api/sessions", timeout=30).json():
        requests.delete(f"{lab.url}/api/sessions/{session['id']}", timeout=30).raise_for_status()
    page.goto(f"{lab.url}/lab/tree/quickstart.ipynb")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    for source in TABLE_CELLS:  # nothing runs: the saved outputs bring what they need
        _expect_interactive(quickstart.cell(source))
    quickstart.screenshot("tables-reopened")

    # The same notebook from someone else (its signature no longer matches, as for a download):
    # JupyterLab runs none of its scripts, and the tables show their static rows.
    notebook = json.loads((lab.root / "quickstart.ipynb").read_text(encoding="utf-8"))
    assert any("mlops-nb-interactive" in json.dumps(c.get("outputs", [])) for c in notebook["cells"])
    notebook["metadata"]["received_from"] = "a colleague"
    (lab.root / "from-a-colleague.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    other = quickstart.context.new_page()
    quickstart.console.watch(other)
    try:
        other.goto(f"{lab.url}/lab/tree/from-a-colleague.ipynb")
        other.locator(".jp-Notebook .jp-Cell").first.wait_for()
        tab = Quickstart(other, quickstart.context, quickstart.console)
        for source in TABLE_CELLS:
            cell = tab.cell(source)
            playwright_api.expect(cell.locator(".mlops-nb-static table")).to_be_visible()
            playwright_api.expect(cell.locator(".mlops-nb-interactive")).to_be_hidden()
            # JupyterLab drops an untrusted output's <style>; the inline alignment stays.
            static_cell = cell.locator(".mlops-nb-static td").first
            assert static_cell.evaluate("e => getComputedStyle(e).textAlign") == "left"
        playwright_api.expect(tab.cell("%mlops deployments")).to_contain_text("credit-default A/B")
        tab.cell("%mlops projects").scroll_into_view_if_needed()
        tab.screenshot("tables-untrusted")
    finally:
        other.close()
    # The reopened notebook's widgets (the login form) had their models in the kernel that ended:
    # ipywidgets says so in the console once it has asked the new kernel (not always by now).
    # The tables are no widgets.
    quickstart.console.errors = [e for e in quickstart.console.errors
                                 if not e.startswith("Error: widget model not found")]
    quickstart.console.assert_clean()


# -- Notebook 7 ----------------------------------------------------------------------------------------


def _wait_for_notebook_kernel(page: Any, server: Lab, path: str) -> None:
    """The notebook at ``path`` has a kernel that is idle, and the page is connected to it.

    Notebook 7 has no status bar naming the kernel; the server's sessions say when one runs.
    """
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while True:
        sessions = requests.get(f"{server.url}/api/sessions", timeout=30).json()
        if any(s["path"] == path and s["kernel"]["execution_state"] == "idle" for s in sessions):
            break
        assert time.monotonic() < deadline, f"no idle kernel for {path}: {sessions}"
        time.sleep(0.5)  # nothing to wait on but the server's answer
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=PAGE_TIMEOUT_MS)


def test_notebook_7_tables_are_interactive_and_stay_so_after_a_reload(
        browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("notebook", minversion="7")
    with _jupyter(tmp_path_factory.mktemp("notebook7"), "notebook", "JupyterNotebookApp") as server:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        console = Console(noise=[*CONSOLE_NOISE, *NOTEBOOK_7_NOISE])
        page = context.new_page()
        console.watch(page)
        notebook = Quickstart(page, context, console)
        try:
            page.goto(f"{server.url}/notebooks/quickstart.ipynb")
            console.prove(page)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _wait_for_notebook_kernel(page, server, "quickstart.ipynb")
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.wait_for_function(
                """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                        .every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()))""",
                timeout=RUN_ALL_TIMEOUT_MS)
            errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]')
            assert errors.count() == 0, "a cell failed:\n" + "\n".join(errors.all_inner_texts())
            for source in TABLE_CELLS:
                _expect_interactive(notebook.cell(source))
            notebook.cell("%mlops deployments").scroll_into_view_if_needed()
            notebook.screenshot("notebook7-tables")

            page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
            page.keyboard.press("Control+s")
            saved = server.root / "quickstart.ipynb"
            deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
            while "mlops-nb-interactive" not in saved.read_text(encoding="utf-8"):
                assert time.monotonic() < deadline, "the notebook was not saved with its outputs"
                time.sleep(0.25)  # the file is all there is to watch
            page.reload()
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _wait_for_notebook_kernel(page, server, "quickstart.ipynb")
            for source in TABLE_CELLS:  # as saved, then run again in the same kernel
                _expect_interactive(notebook.cell(source))
            cell = notebook.cell("%mlops projects")
            _rerun(page, cell, lab_status_bar=False)  # Notebook 7 has no status bar naming the kernel
            _expect_interactive(cell)
            cell.scroll_into_view_if_needed()
            notebook.screenshot("notebook7-after-reload")
            console.assert_clean()
        finally:
            context.close()


# -- the deployment notebook -------------------------------------------------------------------------

DEPLOY_NOTEBOOK = "deploy_a_model.ipynb"
DEPLOY_SCREENSHOT = NOTEBOOKS / "images" / "jupyterlab-deploy.png"
# Training, saving with MLflow, a scorer process loading the model, 600 scoring requests and
# the plots: a few minutes on a loaded 2-core machine.
DEPLOY_RUN_ALL_TIMEOUT_MS = 420_000

# Records every text the wait cell's live display shows, as the page shows it: JupyterLab swaps
# the output's DOM on each update, so each swap is one snapshot.
WATCH_LIVE_DISPLAY = """() => {
    window.mlopsNbLive = [];
    const seen = node => {
        if (!(node instanceof Element)) return;
        for (const shown of [node, ...node.querySelectorAll('.mlops-nb-wait')]) {
            if (shown.matches('.mlops-nb-wait')) window.mlopsNbLive.push(shown.textContent);
        }
    };
    new MutationObserver(changes => changes.forEach(c => c.addedNodes.forEach(seen)))
        .observe(document.body, {childList: true, subtree: true});
}"""


def test_the_deploy_notebook_waits_live_scores_and_plots(lab: Lab, browser: Any) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    console = Console()
    page = context.new_page()
    console.watch(page)
    notebook = Quickstart(page, context, console)
    try:
        # A workspace of its own: the default one reopens the notebooks the other tests had open.
        _open_and_run_all(page, console, f"{lab.url}/lab/workspaces/deploy/tree/{DEPLOY_NOTEBOOK}?reset",
                          DEPLOY_RUN_ALL_TIMEOUT_MS,
                          before_run=WATCH_LIVE_DISPLAY)

        # The wait: while it lasted, one output showed the states as they came; it ends as the card.
        live = page.evaluate("() => window.mlopsNbLive")
        assert live and all("deployment " in text and "waiting" in text for text in live), live
        # Badges name the states in lower case; at least one went by before the card replaced them.
        assert any(state in text for text in live for state in ("preparing", "launching", "healthy")), live
        wait = notebook.cell("status = mlops_nb.wait_for_healthy(client, deployment)")
        outputs = wait.locator(".jp-OutputArea-output")
        playwright_api.expect(outputs).to_have_count(1)
        playwright_api.expect(outputs.locator(".mlops-nb-wait")).to_have_count(0)
        card = outputs.locator(".mlops-nb-card")
        playwright_api.expect(card).to_contain_text("wine")
        playwright_api.expect(card.locator("span[title='HEALTHY']").first).to_have_text("healthy")

        # Scoring: the model's own predictions, on the frame's index.
        scored = notebook.cell("mlops_nb.score(client, deployment, X_test)")
        playwright_api.expect(scored).to_contain_text("same as the local model: 100%")
        playwright_api.expect(scored.locator("table")).to_contain_text("prediction")
        playwright_api.expect(scored.locator("table tbody tr")).to_have_count(5)

        # Monitoring: figures drawn as images, and drift led by the features the "new lab" moved.
        plots = notebook.cell("watch.plot()").locator(".jp-OutputArea-output img")
        assert plots.count() >= 1
        for i in range(plots.count()):
            assert plots.nth(i).evaluate("img => img.complete && img.naturalWidth > 200")
        drift = notebook.cell('watch.drift.sort_values("drift"').locator("table tbody tr")
        leading = " ".join(drift.nth(i).inner_text() for i in range(2))
        assert "alcohol" in leading and "color_intensity" in leading, leading

        wait.scroll_into_view_if_needed()
        notebook.screenshot("deploy-wait-and-score")
        notebook.cell("watch.plot()").scroll_into_view_if_needed()
        notebook.screenshot("deploy-monitoring")
        if os.environ.get("MLOPS_NB_UPDATE_SCREENSHOT") == "1":
            notebook.cell("watch.plot()").evaluate("element => element.scrollIntoView({block: 'start'})")
            DEPLOY_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DEPLOY_SCREENSHOT))
        console.assert_clean()
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "deploy-final.png"))
        context.close()
