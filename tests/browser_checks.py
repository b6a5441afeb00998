"""What every browser test checks on every page it looks at, in one place (a pytest plugin that
tests/conftest.py loads, so its fixtures are everyone's):

- ``browser``: one Debian chromium for the whole session;
- ``watched_context`` / ``watch``: a console error, an uncaught script error, a Content Security
  Policy violation or an alert is recorded and fails the test;
- ``assert_accessible(page)``: zero axe-core violations (axe from the npm registry, installed by
  ``npm install`` at the project's root, injected into the page by the test, not by the app);
- ``assert_fits(page)``: no horizontal scrolling;
- ``shot(page, step)``: both checks, then a full-page screenshot in ``test-artifacts/screenshots/``.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
WIDTHS = (1280, 390)  # a laptop and a phone


@functools.cache
def axe_source() -> str:
    """axe-core's script. Missing is a failure, never a skip: a browser test that cannot check
    accessibility has not tested the page."""
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed ({AXE} is missing): run `npm install` in "
                    f"{ROOT}", pytrace=False)
    return AXE.read_text(encoding="utf-8")


def axe_violations(page) -> list[str]:
    """axe-core's violations on the page as it is now, one readable line each. The script is
    evaluated through the browser's debugging protocol, which the page's CSP does not govern, so
    the page keeps its real policy."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
            for v in result["violations"]]


def assert_accessible(page) -> None:
    violations = axe_violations(page)
    assert violations == [], f"axe on {page.url}:\n" + "\n".join(violations)


# The elements that stick out past the window's right edge, the outermost first.
_OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right > width + 0.5 && !out.some(o => o.contains(el))) { out.push(el); }
  }
  return out.slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '')
    + ' (right edge ' + Math.round(el.getBoundingClientRect().right) + 'px)');
}"""


def overflow(page) -> list[str]:
    """Why the page scrolls sideways, if it does: its width and what sticks out."""
    scroll, client = page.evaluate("[document.documentElement.scrollWidth,"
                                   " document.documentElement.clientWidth]")
    if scroll <= client:
        return []
    return [f"{page.url} is {scroll}px wide in a {client}px window: "
            + "; ".join(page.evaluate(_OVERFLOWING))]


def assert_fits(page) -> None:
    """No horizontal scrolling: the document is no wider than the window."""
    assert overflow(page) == []


def page_problems(page) -> list[str]:
    """Horizontal scrolling and axe violations, for a test that visits many pages and reports
    them all at once."""
    return overflow(page) + [f"axe on {page.url}: {v}" for v in axe_violations(page)]


def check_page(page) -> None:
    assert page_problems(page) == []


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the test extra installs playwright")
    axe_source()  # before the browser starts: a missing axe fails at once
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Watch:
    """What went wrong in a page while a test used it."""

    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    dialogs: list[tuple[str, str]] = field(default_factory=list)

    def problems(self) -> list[str]:
        alerts = [f"{kind}: {text}" for kind, text in self.dialogs if kind != "confirm"]
        return self.console_errors + self.csp_violations + alerts


@pytest.fixture
def watch():
    return Watch()


def watched_context(browser, base_url: str, watch: Watch, width: int = 1280, **options):
    """A new browser context whose pages report their problems to ``watch``; the app's own
    "are you sure?" questions are accepted."""
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900},
                                  **options)
    context.expose_function("__reportCsp", lambda text: watch.csp_violations.append(text))
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', function (e) {"
        " window.__reportCsp('CSP ' + e.violatedDirective + ' blocked ' + e.blockedURI"
        " + ' at ' + e.sourceFile + ':' + e.lineNumber); });")

    def on_page(page):
        page.on("console", lambda msg: msg.type == "error" and watch.console_errors.append(
            f"console error on {page.url}: {msg.text}"))
        page.on("pageerror", lambda error: watch.console_errors.append(
            f"script error on {page.url}: {error}"))

        def on_dialog(dialog):
            watch.dialogs.append((dialog.type, dialog.message))
            if dialog.type == "confirm":
                dialog.accept()
            else:
                dialog.dismiss()

        page.on("dialog", on_dialog)

    context.on("page", on_page)
    return context


@pytest.fixture
def shot(request):
    """``shot(page, "step")`` checks the page (no horizontal scrolling, zero axe violations),
    then saves a full-page screenshot named after the test and the step. ``check=False`` only
    takes the picture."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^\w.-]+", "-", request.node.name.removeprefix("test_")).strip("-")
    for stale in SCREENSHOTS.glob(f"{test_name}-*.png"):  # from an earlier run
        stale.unlink()
    steps = []

    def take(page, step: str, check: bool = True) -> Path:
        steps.append(step)
        path = SCREENSHOTS / f"{test_name}-{len(steps):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        if check:
            check_page(page)
        return path

    return take
