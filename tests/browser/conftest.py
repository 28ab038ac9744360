"""Real-browser fixtures: JupyterLab on a temporary copy of the course, driven by headless Chromium.

The server runs the course's own Python (``sys.executable -m jupyterlab``), so the kernel
"metagrad-course" registered in the venv (``ipykernel install --sys-prefix``) is the one it finds.
Everything it writes (notebooks, checkpoints, settings, workspaces, connection files) goes to a
pytest temporary directory: a learner's notebooks and Jupyter settings are never touched.
The browser is Debian's Chromium (``apt-get install chromium``, see ``.ci/install-system-deps``)
driven by the ``playwright`` Python package; Playwright's own browser downloads are never used.
Set ``CHROMIUM=/path/to/chromium`` to use another build.

A missing tool (playwright, Chromium, the course kernel) skips these tests on a learner's machine,
with one line saying how to get it; under CI (``CI=true``) it fails them: CI never skips in
silence.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
# The repository root, as tests/conftest.py names it: `from conftest import ROOT` in a test module
# may find this conftest first, depending on the order xdist workers put them on sys.path.
ROOT = REPO
KERNEL_NAME = "metagrad-course"
COURSE_DIRS = ("solutions", "notebooks")
SERVER_START_TIMEOUT_S = 90
# A fresh profile comes from Playwright's launch(); these keep a headless, root, offline run quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# User settings for the test server only: render every cell (JupyterLab 4 otherwise detaches
# off-screen cells, hiding them from selectors) and never reach for the network.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def missing_tool_fails(environ: Mapping[str, str] = os.environ) -> bool:
    """True under CI (``CI`` set, and not to ``0`` or ``false``), where a missing tool fails the
    browser tests instead of skipping them."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false")


def skip_or_fail(reason: str) -> NoReturn:
    if missing_tool_fails():
        pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
    pytest.skip(reason)


if missing_tool_fails():
    import playwright.sync_api  # noqa: F401 - under CI a missing playwright is an error, not a skip


def chromium_path() -> str | None:
    """Debian's Chromium, or ``$CHROMIUM`` when set."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kernel_spec():
    """The course kernel's spec as this Python's Jupyter sees it, or None if not registered."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        return None


class LabServer:
    """A running JupyterLab: ``url(path)`` opens a file of the course copy at ``root``."""

    kernel_name = KERNEL_NAME

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log
        self.kernel_display_name = _kernel_spec().display_name
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str = "") -> str:
        # ``reset``: start from an empty workspace, not the tabs an earlier test left open.
        return f"{self.base}/lab/tree/{path}?reset&token={self.token}"

    def api(self, endpoint: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(
            f"{self.base}/api/{endpoint}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read()

    def log_tail(self, n_chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n_chars:]

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                json.loads(self.api("status"))
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        raise RuntimeError(
            f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Ask the server to shut down its kernels and exit; escalate to signals if it does not."""
        if self.process.poll() is None:
            try:
                self.api("shutdown", method="POST")
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue


def _write_lab_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path; where a tool is missing, skips the browser tests (fails them under CI)
    with one line giving the fix."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("playwright not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        skip_or_fail(
            "Chromium not found (run .ci/install-system-deps, or set CHROMIUM=/path/to/chromium)"
        )
    return executable


@pytest.fixture(scope="module")
def lab_server(chromium, tmp_path_factory, request) -> LabServer:
    """JupyterLab on 127.0.0.1 (free port, random token) serving a temporary copy of the course."""
    if _kernel_spec() is None:
        skip_or_fail(
            f"Jupyter kernel {KERNEL_NAME!r} not registered (run `make lab` or `make test` once)"
        )
    base = tmp_path_factory.mktemp("lab")
    root = base / "course"
    root.mkdir()
    for name in COURSE_DIRS:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, root / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints")
            )
    private = {
        name: base / name
        for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")
    }
    for path in private.values():
        path.mkdir()
    _write_lab_settings(private["settings"])
    env = {
        **os.environ,
        "COURSE_QUICK": "1",
        "JUPYTER_CONFIG_DIR": str(private["config"]),
        "JUPYTER_DATA_DIR": str(private["data"]),
        "JUPYTER_RUNTIME_DIR": str(private["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(private["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(private["workspaces"]),
        "IPYTHONDIR": str(private["ipython"]),
    }
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}",
    ]  # fmt: skip
    log = base / "jupyterlab.log"
    with log.open("wb") as log_file:
        # Own process group: a Ctrl-C reaches pytest alone, whose finalizer then stops the server.
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(root, port, token, process, log)
    request.addfinalizer(server.stop)
    server.wait_until_ready()
    return server


@pytest.fixture(scope="module")
def browser(chromium, request):
    """Headless Chromium driven by Playwright, closed when the module's tests are done."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    request.addfinalizer(playwright.stop)
    browser = playwright.chromium.launch(
        executable_path=chromium, headless=True, args=CHROMIUM_ARGS
    )
    request.addfinalizer(browser.close)
    return browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def console() -> list[str]:
    """The page's console messages and uncaught errors, as "type: text" lines."""
    return []


@pytest.fixture
def page(browser, lab_server, console, request, tmp_path):
    """A fresh browser page; on failure its screenshot, its console and the server's log are
    saved under ``tmp_path``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield page
    report = getattr(request.node, "report_call", None)
    try:
        if report is not None and report.failed:
            page.screenshot(path=tmp_path / "failure.png", full_page=True)
            (tmp_path / "console.log").write_text("\n".join(console))
            (tmp_path / "jupyterlab.log").write_text(lab_server.log_tail(20_000))
            print(f"failure screenshot, browser console and server log: {tmp_path}")
    finally:
        context.close()
